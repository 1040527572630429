package redisstore

import (
	"strconv"
	"sync"
)

// slots is the number of Redis Cluster hash slots.
const slots = 16384

// slot returns the hash slot of a hash tag (the part of a key in braces):
// CRC16-CCITT (XModem) modulo 16384, as Redis Cluster computes it.
func slot(tag string) int {
	var crc uint16
	for i := 0; i < len(tag); i++ {
		crc ^= uint16(tag[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % slots
}

var (
	tagsOnce sync.Once
	tags     [slots]string
)

// slotTag returns a short hash tag that lands in hash slot sl, so that a key
// carrying it lives beside the profiles of that slot. The table is the
// first tag found for each slot among decimal numbers, built once.
func slotTag(sl int) string {
	tagsOnce.Do(func() {
		left := slots
		for i := 0; left > 0; i++ {
			t := strconv.Itoa(i)
			if s := slot(t); tags[s] == "" {
				tags[s] = t
				left--
			}
		}
	})
	return tags[sl]
}

package redisstore

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSlot(t *testing.T) {
	// Reference values from the Redis Cluster specification (key
	// distribution model: CRC16 of "123456789" is 0x31C3) and CLUSTER
	// KEYSLOT on a real server ("foo" is in slot 12182, "bar" in 5061).
	assert.Equal(t, 0x31C3%slots, slot("123456789"))
	assert.Equal(t, 12182, slot("foo"))
	assert.Equal(t, 5061, slot("bar"))
}

func TestSlotTagCoversEverySlot(t *testing.T) {
	for sl := range slots {
		tag := slotTag(sl)
		if !assert.NotEmpty(t, tag) || !assert.Equal(t, sl, slot(tag)) {
			return
		}
	}
}

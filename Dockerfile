# Multi-stage build: a static etalage binary in a minimal non-root image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
# .dockerignore keeps etalage-data/ (the generated cookie secret), node_modules
# and .git out of the build context.
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/etalage ./cmd/etalage \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/etalage /usr/local/bin/etalage
COPY --from=build --chown=nonroot:nonroot /out/data /data
USER nonroot:nonroot
# Public API and snippet; admin API (bind it to a private network only).
EXPOSE 8080 8081
ENV ETALAGE_LISTEN=:8080 \
    ETALAGE_ADMIN_LISTEN=:8081 \
    ETALAGE_STORE=embedded:/data
VOLUME ["/data"]
# No URL: `etalage health` asks /healthz on $ETALAGE_LISTEN, so moving the
# listener moves the check with it.
HEALTHCHECK --interval=10s --timeout=2s --retries=3 CMD ["/usr/local/bin/etalage", "health"]
ENTRYPOINT ["/usr/local/bin/etalage"]
CMD ["serve"]

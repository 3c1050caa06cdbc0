# Two stages: build with the Go toolchain, run from a small image as an
# unprivileged user. The daemon listens on 2525 (SMTP/LMTP) and 9464 (HTTP).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
COPY third_party ./third_party
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/spamsurge ./cmd/spamsurge \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/spamsurge /usr/local/bin/spamsurge
# Data (the keyed recipient state) lives in a volume owned by nonroot
# (65532): distroless has no shell to chown at run time, so the directory
# is copied in with its owner; a fresh named volume inherits it.
COPY --from=build --chown=65532:65532 /out/data /var/lib/spamsurge
WORKDIR /var/lib/spamsurge
VOLUME ["/var/lib/spamsurge"]
USER nonroot:nonroot
EXPOSE 2525 9464
ENTRYPOINT ["/usr/local/bin/spamsurge"]
CMD ["serve", "--config", "/etc/spamsurge/spamsurge.yaml", "--log-format", "json"]

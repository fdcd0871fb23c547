# Switchboard as a container: one static binary on a distroless base,
# running as a non-root user, its data (SQLite database, the simulated
# cloud's state, deploy repositories) in the /data volume.
#
#   docker build -t switchboard --build-arg VERSION=$(git describe --tags --always) .
#   docker run -p 8080:8080 -v switchboard-data:/data \
#     -v $PWD/switchboard.yaml:/etc/switchboard/switchboard.yaml:ro \
#     -e SLACK_SIGNING_SECRET -e SLACK_BOT_TOKEN switchboard
#
# The config must listen beyond loopback inside the container and keep its
# data in /data: listen: 0.0.0.0:8080, data_dir: /data,
# store: sqlite:///data/switchboard.db (see docs/install.md).

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# CGO_ENABLED=0: a static binary (SQLite is pure Go), so the runtime image
# needs no C library.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/switchboardhq/switchboard.Version=${VERSION}" \
      -o /out/switchboard ./cmd/switchboard \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/switchboard /usr/local/bin/switchboard
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["serve", "--config", "/etc/switchboard/switchboard.yaml"]

# The chat server image: a static binary on an empty base, run as non-root.
# GO_IMAGE is a build ARG so the image builds offline on a local Go base.
# Multi-arch: the compiler runs on the build platform and cross-compiles for
# TARGETOS/TARGETARCH (set by BuildKit; the classic builder builds for the
# host), so arm64 (Graviton) images need no emulation.
ARG GO_IMAGE=golang:1.26-bookworm
# BuildKit sets BUILDPLATFORM itself; the default serves the classic builder.
ARG BUILDPLATFORM=linux/amd64

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY chatserver/ chatserver/
ARG TARGETOS=linux
ARG TARGETARCH
# VERSION/REVISION are declared only in the final stage: the compile layer
# stays cached across releases that differ only in their labels.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags "-s -w" -o /out/chatserver ./chatserver

FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/mywebchat/mywebchat
LABEL org.opencontainers.image.title="mywebchat-app" \
      org.opencontainers.image.description="MyWebChat chat server" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/chatserver /chatserver
USER 65532:65532
EXPOSE 8080
# The engine's own check (docker ps, restart policies); the deploy agent
# health-gates over HTTP on its own. Exec form: there is no shell.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/chatserver", "-healthcheck"]
ENTRYPOINT ["/chatserver"]

# syntax=docker/dockerfile:1
# The chat server image: a static binary on an empty base, run as non-root.
# GO_IMAGE is a build ARG so the image builds offline on a local Go base.
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
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags "-s -w" -o /out/chatserver ./chatserver

FROM scratch
COPY --from=build /out/chatserver /chatserver
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/chatserver"]

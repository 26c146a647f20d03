# syntax=docker/dockerfile:1
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# TAGS="nogcs noazure" leaves those storage drivers out (nogcs: about 27 MB less).
ARG TAGS=""
RUN CGO_ENABLED=0 go build -trimpath -tags "${TAGS}" -ldflags "-s -w -X main.version=${VERSION}" -o /out/proxy ./cmd/proxy \
 && mkdir -p /out/var/lib/proxy

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/proxy /usr/local/bin/proxy
COPY --from=build --chown=65532:65532 /out/var/lib/proxy /var/lib/proxy
ENV REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/var/lib/proxy
USER 65532:65532
VOLUME /var/lib/proxy
EXPOSE 5000
ENTRYPOINT ["/usr/local/bin/proxy"]
CMD ["serve"]

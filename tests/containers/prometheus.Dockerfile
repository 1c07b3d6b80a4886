# Test-only Prometheus image: the binary of Debian's `prometheus` package (copied from the host by the
# tests) on the debootstrap base, laid out like prom/prometheus (entrypoint, /prometheus, uid 65534).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY prometheus /bin/prometheus
RUN mkdir -p /etc/prometheus /prometheus && chown 65534:65534 /prometheus
USER 65534:65534
WORKDIR /prometheus
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]

import Prometheus

/// What `GET /metrics` reports, in Prometheus's text format: requests and errors by endpoint
/// and status, inputs answered, forward-pass batch sizes and durations, the queue's depth, request
/// latency, and the matrix primitives made for new shapes (with the seconds that took).
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let inputs: Counter
    let batchSize: ValueHistogram
    let queueDepth: Gauge
    let latency: DurationHistogram
    let passDuration: DurationHistogram
    let primitives: Gauge
    let primitiveSeconds: Gauge

    init() {
        inputs = registry.makeCounter(descriptor: Self.name("inputs", "total", "Inputs answered by /v1/predict."))
        batchSize = registry.makeValueHistogram(descriptor: Self.name("batch", "size", "Inputs per forward pass."),
                                                buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256])
        queueDepth = registry.makeGauge(descriptor: Self.name("queue", "depth", "Inputs waiting for a forward pass."))
        latency = registry.makeDurationHistogram(
            descriptor: Self.name("request_duration", "seconds", "Time from a /v1/predict request's arrival to its answer."),
            buckets: [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                      .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10)])
        passDuration = registry.makeDurationHistogram(
            descriptor: Self.name("batch_duration", "seconds", "Time the model took over one batch of inputs."),
            buckets: [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                      .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5)])
        primitives = registry.makeGauge(descriptor: Self.name(
            "matrix_primitives", "total", "Matrix-product primitives made so far (one per new product shape)."))
        primitiveSeconds = registry.makeGauge(descriptor: Self.name(
            "matrix_primitive", "seconds", "Seconds spent making matrix-product primitives so far."))
    }

    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "ptune", metricName: metric, unitName: unit, helpText: help)
    }

    /// Counts a request to `endpoint` answered with `status` (and an error when it is 4xx or 5xx).
    func count(_ endpoint: String, status: Int) {
        let labels = [("endpoint", endpoint), ("status", String(status))]
        registry.makeCounter(descriptor: Self.name("requests", "total", "Requests by endpoint and status."), labels: labels)
            .increment()
        if status >= 400 {
            registry.makeCounter(descriptor: Self.name("errors", "total", "Requests answered with an error, by endpoint and status."),
                                 labels: labels).increment()
        }
    }

    func text() -> String { registry.emitToString() }
}

import Foundation
import HTTPTypes
import Hummingbird
import Model
import NIOCore
import Tasks

/// How the server listens, batches and limits what it accepts.
public struct ServerSettings: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Inputs per forward pass at most, and how long the oldest waiting input waits for more.
    public var maxBatch = 32
    public var maxWaitMilliseconds = 5.0
    /// Inputs waiting at most; a request that does not fit is answered 503 with Retry-After.
    public var queueCapacity = 1024
    public var maxBodyBytes = 1 << 20
    public var maxInputsPerRequest = 256
    /// Truncate inputs to this many tokens (or the task's model's limit, if lower).
    public var maxLength = 128
    /// Batch one task at a time instead of mixing tasks (for comparison).
    public var oneTaskPerBatch = false

    public init() {}
}

/// Serves `registry` over HTTP/1.1 until SIGTERM or SIGINT, then stops accepting, answers what is
/// in flight and returns. `announce` hears the address once the server listens.
public func serve(_ registry: AdapterRegistry, settings: ServerSettings,
                  announce: @escaping @Sendable (String) -> Void) async throws {
    let metrics = ServerMetrics()
    let queue = PredictionQueue(registry: registry, settings: .init(
        maxBatch: settings.maxBatch, maxWait: settings.maxWaitMilliseconds / 1000, capacity: settings.queueCapacity,
        oneTaskPerBatch: settings.oneTaskPerBatch), metrics: metrics)
    queue.start()
    defer { queue.stop() }
    let handler = PredictHandler(registry: registry, queue: queue, metrics: metrics, settings: settings)
    let tasksBody = registry.tasksJSON()
    let router = Router()
    router.get("health") { _, _ in
        metrics.count("/health", status: 200)
        return jsonResponse(.ok, "{\"status\":\"ok\",\"tasks\":\(registry.tasks.count)}")
    }
    router.get("v1/tasks") { _, _ in
        metrics.count("/v1/tasks", status: 200)
        return jsonResponse(.ok, tasksBody)
    }
    router.get("metrics") { _, _ in
        metrics.count("/metrics", status: 200)
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: metrics.text())))
    }
    router.post("v1/predict") { request, _ in await handler.respond(to: request) }
    let app = Application(
        router: router,
        configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "ptune"),
        onServerRunning: { channel in
            announce("serving \(registry.tasks.count) tasks (\(registry.tasks.map(\.name).joined(separator: ", "))) on "
                     + "http://\(settings.host):\(channel.localAddress?.port ?? settings.port)")
        })
    try await app.runService()
}

/// `POST /v1/predict`: one input `{"task": T, "text": ...}` (or `"tokens": [...]`) answered with what
/// `ptune predict` writes for it, or `{"inputs": [...]}` answered `{"outputs": [...]}` in order.
/// Bad input is a 4xx `{"error": ...}` naming the problem; a full queue 503 with Retry-After.
struct PredictHandler: Sendable {
    let registry: AdapterRegistry
    let queue: PredictionQueue
    let metrics: ServerMetrics
    let settings: ServerSettings

    func respond(to request: Request) async -> Response {
        let started = ContinuousClock.now
        let (status, body, headers) = await answer(request)
        metrics.count("/v1/predict", status: Int(status.code))
        if status == .ok { metrics.latency.record(ContinuousClock.now - started) }
        var fields: HTTPFields = [.contentType: "application/json"]
        fields.append(contentsOf: headers)
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    private func answer(_ request: Request) async -> (HTTPResponse.Status, String, HTTPFields) {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: settings.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            return failure(.contentTooLarge, "the body is over \(settings.maxBodyBytes) bytes")
        } catch {
            return failure(.badRequest, "the body could not be read: \(error)")
        }
        let data = Data(buffer.readableBytesView)
        guard let parsed = try? JSONSerialization.jsonObject(with: data) else {
            return failure(.badRequest, data.isEmpty ? "the body is empty: send a JSON object" : "the body is not valid JSON")
        }
        guard let object = parsed as? [String: Any] else {
            return failure(.badRequest, "the body must be a JSON object ({\"task\": ..., \"text\": ...} or {\"inputs\": [...]})")
        }
        let many = object["inputs"] != nil
        var objects = [object]
        if many {
            guard let list = object["inputs"] as? [Any] else { return failure(.badRequest, "field 'inputs' is not a list") }
            guard !list.isEmpty else { return failure(.badRequest, "field 'inputs' is empty") }
            guard list.count <= settings.maxInputsPerRequest else {
                return failure(.contentTooLarge, "\(list.count) inputs in one request; at most \(settings.maxInputsPerRequest)")
            }
            objects = []
            for (index, element) in list.enumerated() {
                guard let input = element as? [String: Any] else {
                    return failure(.badRequest, "inputs[\(index)] is not an object")
                }
                objects.append(input)
            }
        }
        var items: [PendingInput] = []
        for (index, input) in objects.enumerated() {
            let place = many ? "inputs[\(index)]" : "request"
            guard let value = input["task"] else { return failure(.badRequest, "\(place): missing field 'task'") }
            guard let name = value as? String else { return failure(.badRequest, "\(place): field 'task' is not a string") }
            guard let task = registry.tasks.firstIndex(where: { $0.name == name }) else {
                return failure(.notFound, "\(place): unknown task \(jsonString(name)); serving "
                               + registry.tasks.map(\.name).joined(separator: ", "))
            }
            let served = registry.tasks[task]
            do {
                let parsed = try PredictionInput(input, kind: served.kind, place: place, allowEmpty: false)
                let encoded = parsed.encoded(tokenizer: registry.tokenizer, kind: served.kind,
                                             maxLength: min(settings.maxLength, served.maxTokens))
                items.append(PendingInput(task: task, input: parsed, encoded: encoded))
            } catch {
                return failure(.badRequest, "\(error)")
            }
        }
        guard items.count <= settings.queueCapacity else {
            return failure(.contentTooLarge, "\(items.count) inputs in one request; the queue holds \(settings.queueCapacity)")
        }
        guard let answers = await queue.submit(items) else {
            return failure(.serviceUnavailable, "the queue is full (\(settings.queueCapacity) inputs); retry shortly",
                           headers: [HTTPField.Name("Retry-After")!: "1"])
        }
        var outputs: [String] = []
        for answer in answers {
            switch answer {
            case .success(let json): outputs.append(json)
            case .failure(let failure): return self.failure(.internalServerError, failure.message)
            }
        }
        metrics.inputs.increment(by: Int64(outputs.count))
        return (.ok, many ? "{\"outputs\":[" + outputs.joined(separator: ",") + "]}" : outputs[0], [:])
    }

    private func failure(_ status: HTTPResponse.Status, _ message: String,
                         headers: HTTPFields = [:]) -> (HTTPResponse.Status, String, HTTPFields) {
        (status, "{\"error\":\(jsonString(message))}", headers)
    }
}

private func jsonResponse(_ status: HTTPResponse.Status, _ body: String) -> Response {
    Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
}

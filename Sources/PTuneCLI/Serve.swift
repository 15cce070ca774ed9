import ArgumentParser
import Foundation
import Serving

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a registry's adapters over HTTP: one frozen base, every task's adapter, batches mixing tasks.",
        discussion: """
        POST /v1/predict {"task": T, "text": ..., "text_pair": ...} or {"task": T, "tokens": [...]} answers what \
        ptune predict writes for that input; {"inputs": [...]} answers {"outputs": [...]} in order. GET /v1/tasks, \
        GET /health, GET /metrics (Prometheus). SIGTERM or SIGINT: stop accepting, answer what is in flight, exit 0.
        """)

    @OptionGroup var model: ModelOptions

    @Option(help: "Registry folder that ptune run or ptune adapt wrote (manifest.json and one PEFT folder per task).")
    var registry: String?

    @Option(help: ArgumentHelp("An adapter to serve besides the registry's, as TASK=DIR (repeatable).", valueName: "task=dir"))
    var adapter: [String] = []

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free one; the first log line says which).") var port = 8080
    @Option(help: "Inputs per forward pass at most.") var maxBatch = 32
    @Option(help: "Milliseconds the oldest waiting input waits for others to share its pass.") var maxWaitMs: Double = 5
    @Option(help: "Inputs that may wait at once; past that, requests are answered 503 with Retry-After.") var maxQueue = 1024
    @Option(help: "Largest request body in bytes (413 past it).") var maxBodyBytes = 1 << 20
    @Option(help: "Most inputs in one request (413 past it).") var maxInputs = 256
    @Option(help: "Truncate inputs to this many tokens, [CLS] and [SEP] included.") var maxLength = 128
    @Flag(help: "Batch one task at a time instead of mixing tasks in a pass (for comparison).") var oneTaskPerBatch = false

    @OptionGroup var precision: PrecisionOptions

    func validate() throws {
        guard registry != nil || !adapter.isEmpty else { throw ValidationError("give --registry DIR or --adapter TASK=DIR") }
        for (name, value) in [("--max-batch", maxBatch), ("--max-queue", maxQueue), ("--max-body-bytes", maxBodyBytes),
                              ("--max-inputs", maxInputs)] where value <= 0 {
            throw ValidationError("\(name) must be positive, not \(value)")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be within 0...65535, not \(port)") }
        guard maxWaitMs >= 0, maxWaitMs.isFinite else { throw ValidationError("--max-wait-ms must be at least 0") }
        guard maxLength >= 2 else { throw ValidationError("--max-length must be at least 2") }
        _ = try extraAdapters()
    }

    private func extraAdapters() throws -> [(task: String, folder: String)] {
        try adapter.map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ValidationError("--adapter takes TASK=DIR, not '\(pair)'")
            }
            return (parts[0], parts[1])
        }
    }

    func run() throws {
        try precision.apply()
        let loaded = try AdapterRegistry(registry: registry, extra: try extraAdapters(), modelFolder: model.folder)
        var settings = ServerSettings()
        settings.host = host
        settings.port = port
        settings.maxBatch = maxBatch
        settings.maxWaitMilliseconds = maxWaitMs
        settings.queueCapacity = maxQueue
        settings.maxBodyBytes = maxBodyBytes
        settings.maxInputsPerRequest = maxInputs
        settings.maxLength = maxLength
        settings.oneTaskPerBatch = oneTaskPerBatch
        // The server is asynchronous; this command waits for it on the main thread.
        let done = DispatchSemaphore(value: 0)
        let outcome = ServeOutcome()
        Task {
            do {
                try await serve(loaded, settings: settings) { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
            } catch {
                outcome.error = error
            }
            done.signal()
        }
        done.wait()
        if let error = outcome.error { throw error }
    }
}

/// The server task's error, read after it ends.
private final class ServeOutcome: @unchecked Sendable {
    var error: (any Error)?
}

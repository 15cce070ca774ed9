import Foundation
import Kernels
import Model
import Tasks
import Tuning

/// One input waiting for its forward pass: its task, its encoding, and where its answer goes.
struct PendingInput {
    let task: Int
    let input: PredictionInput
    let encoded: EncodedExample
}

/// Dynamic batching across requests and tasks: inputs that arrive within `maxWait` of the oldest
/// waiting one (or that fill `maxBatch`) run as one forward pass on one worker thread, whatever
/// their tasks; with `oneTaskPerBatch`, a pass takes only the oldest input's task (the comparison
/// the benchmark makes). At most `capacity` inputs wait; past that, `submit` refuses.
final class PredictionQueue: @unchecked Sendable {
    struct Settings: Sendable {
        var maxBatch = 32
        var maxWait = 5.0 / 1000
        var capacity = 1024
        var oneTaskPerBatch = false
    }

    /// A request's inputs, answered together once the last of them is.
    private final class Ticket {
        var answers: [Result<String, PredictionFailure>?]
        var remaining: Int
        let continuation: CheckedContinuation<[Result<String, PredictionFailure>]?, Never>

        init(count: Int, continuation: CheckedContinuation<[Result<String, PredictionFailure>]?, Never>) {
            answers = Array(repeating: nil, count: count)
            remaining = count
            self.continuation = continuation
        }
    }

    private struct Waiting {
        let item: PendingInput
        let ticket: Ticket
        let index: Int
        let arrived: Date
    }

    private let registry: AdapterRegistry
    private let settings: Settings
    private let metrics: ServerMetrics
    private let condition = NSCondition()
    private var waiting: [Waiting] = []
    private var stopping = false
    private var worker: Thread?
    private let finished = DispatchSemaphore(value: 0)

    init(registry: AdapterRegistry, settings: Settings, metrics: ServerMetrics) {
        self.registry = registry
        self.settings = settings
        self.metrics = metrics
    }

    func start() {
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "ptune-predict"
        thread.stackSize = 8 << 20
        worker = thread
        thread.start()
    }

    /// Answers what is queued, then ends the worker thread.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
        if worker != nil { finished.wait() }
    }

    /// The answers to `items`, in order, or nil when the queue has no room for them all.
    func submit(_ items: [PendingInput]) async -> [Result<String, PredictionFailure>]? {
        await withCheckedContinuation { continuation in
            condition.lock()
            guard !stopping, waiting.count + items.count <= settings.capacity else {
                condition.unlock()
                continuation.resume(returning: nil)
                return
            }
            let ticket = Ticket(count: items.count, continuation: continuation)
            let now = Date()
            for (index, item) in items.enumerated() { waiting.append(Waiting(item: item, ticket: ticket, index: index, arrived: now)) }
            metrics.queueDepth.set(Double(waiting.count))
            condition.signal()
            condition.unlock()
        }
    }

    private func run() {
        while let batch = nextBatch() {
            let answers = predict(batch.map(\.item))
            var done: [Ticket] = []
            for (entry, answer) in zip(batch, answers) {
                entry.ticket.answers[entry.index] = answer
                entry.ticket.remaining -= 1
                if entry.ticket.remaining == 0 { done.append(entry.ticket) }
            }
            for ticket in done { ticket.continuation.resume(returning: ticket.answers.map { $0! }) }
        }
    }

    /// Waits for inputs, then for the batch to fill or the oldest input's wait to end; nil once
    /// stopping with nothing left.
    private func nextBatch() -> [Waiting]? {
        condition.lock()
        defer { condition.unlock() }
        while waiting.isEmpty {
            if stopping { return nil }
            condition.wait()
        }
        let deadline = waiting[0].arrived.addingTimeInterval(settings.maxWait)
        while eligible().count < settings.maxBatch, !stopping, Date() < deadline {
            _ = condition.wait(until: deadline)
        }
        let chosen = Array(eligible().prefix(settings.maxBatch))
        let taken = Set(chosen)
        let batch = chosen.map { waiting[$0] }
        waiting = waiting.enumerated().filter { !taken.contains($0.offset) }.map(\.element)
        metrics.queueDepth.set(Double(waiting.count))
        return batch
    }

    /// Indices of the waiting inputs the next pass may take: all, or the oldest one's task's.
    private func eligible() -> [Int] {
        guard settings.oneTaskPerBatch, let first = waiting.first else { return Array(waiting.indices) }
        return waiting.indices.filter { waiting[$0].item.task == first.item.task }
    }

    private func predict(_ items: [PendingInput]) -> [Result<String, PredictionFailure>] {
        metrics.batchSize.record(Double(items.count))
        let encodings = items.map { Encoding(inputIds: $0.encoded.inputIds, tokenTypeIds: $0.encoded.tokenTypeIds) }
        let started = ContinuousClock.now
        let logits = registry.model.predict(encodings, members: items.map(\.task), paddingId: registry.tokenizer.paddingId)
        metrics.passDuration.record(ContinuousClock.now - started)
        metrics.primitives.set(Double(WorkCounter.primitivesMade))
        metrics.primitiveSeconds.set(WorkCounter.primitiveSeconds)
        return zip(items, logits).map { item, values in
            let task = registry.tasks[item.task]
            // JSON has no NaN: a broken adapter answers an error, not an unreadable reply.
            guard values.allSatisfy(\.isFinite) else {
                return .failure(PredictionFailure(message: "task '\(task.name)' computes non-finite logits: its adapter is broken"))
            }
            return .success(predictionJSON(item.input, item.encoded, logits: values, labels: task.labelCount, kind: task.kind,
                                           names: task.labels))
        }
    }
}

/// An input the model could not answer (a server fault, not the client's).
struct PredictionFailure: Error {
    let message: String
}

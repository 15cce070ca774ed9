import Distributed
import Foundation
import Kernels
import Model
import Tasks
import Tuning

/// Trains one task with one method, alone or data-parallel over ranks, writing a run folder:
///
///     config.json       the resolved settings (what --resume reads)
///     metrics.jsonl     step, loss, learning rate, tokens/s; dev metrics at each evaluation
///     best_adapter/     the best adapter on dev, in PEFT's format
///     checkpoint.safetensors  the state at the last evaluation, every `checkpointEvery` steps or at
///                       SIGINT/SIGTERM: trainable weights, AdamW moments, step
///     .ptune.lock       held while a process works on the run (see `RunFolder`)
///     summary.json      best dev metrics, test metrics of the best adapter, counts and wall time
///
/// Deterministic for a seed: batch order per epoch, dropout per step and sequence and initial
/// values all derive from it, so a resumed run ends where an uninterrupted one would.
///
/// Data-parallel over the communicator's ranks: `batchSize` is the global batch, each rank
/// computes gradients on its share (padded to the global batch's length, the loss divided
/// by the global count), the trainable gradients are summed, and every rank applies the same
/// update; the result equals one process's. Only rank 0 writes the run folder.
public final class Trainer {
    public let settings: TrainingSettings
    public let folder: String
    public let pretrained: PretrainedModel
    public let spec: TaskSpec
    public let model: TunedModel
    public let train: SplitData, dev: SplitData
    /// The test split, read before training so a bad file fails before the work, not after it.
    public let test: SplitData?
    public let communicator: Communicator
    /// Gradients over the ranks, clipping and AdamW: the step `pretrain` and `bench` take too.
    private let trainingStep: TrainingStep
    private var exchange: GradientExchange { trainingStep.exchange }
    private let logPrefix: String
    /// Examples cut to --max-length, per split (dev is train's when the task has no dev split).
    private var truncated: [(key: String, value: Int)] {
        [("train", train.truncatedCount)] + (dev.name == "train" ? [] : [(dev.name, dev.truncatedCount)])
            + (test.map { [("test", $0.truncatedCount)] } ?? [])
    }
    /// What this run's log lines say it is: the rank or group, the stage, the task and the method.
    private var label: String { "\(logPrefix)\(spec.name)/\(settings.method.name)" }
    private var optimizer: AdamW { trainingStep.optimizer }
    /// The frozen layers' outputs of the training examples, with `cacheFrozenLayers`.
    private let frozenCache: FrozenOutputCache?
    private var step = 0
    private var bestScore = -Double.infinity, bestStep = 0, evaluationsWithoutGain = 0
    private var wallSeconds = 0.0
    private var checkpointStep = 0
    /// The folder's lock, on rank 0 (the only writer), held for the trainer's life.
    private var runFolder: RunFolder?

    /// Prepares a new run in `folder` (which must not hold one), or with `resume`, continues the run there.
    /// - Parameter logPrefix: what log lines start with (default: the rank, when there are several).
    public init(settings: TrainingSettings, folder: String, resume: Bool = false,
                communicator: Communicator = SingleProcess(), logPrefix: String? = nil) throws {
        self.logPrefix = logPrefix ?? communicator.logPrefix
        var settings = settings
        // A resumed run computes at the precision it started with, whatever this command's default.
        if resume {
            let configPath = folder + "/config.json"
            let fields = try JSONFields(contentsOf: configPath)
            settings.precision = try TrainingSettings(json: fields.json, source: configPath).precision
        }
        if settings.precision == .bf16, !MatrixEngine.supportsBFloat16 {
            throw InputError(folder, "the run computes in bf16, which this processor cannot "
                             + "(no AVX512-BF16 or AMX)")
        }
        MatrixEngine.precision = settings.precision
        try settings.validate()
        guard settings.batchSize >= communicator.size else {
            throw InputError("--batch-size", "the global batch of \(settings.batchSize) cannot be shared by "
                             + "\(communicator.size) ranks")
        }
        // Files may load on one rank and not another (another node's file system): agree first.
        (pretrained, spec, train, dev, test) = try communicator.agreed(Result {
            let pretrained = try PretrainedModel(folder: settings.modelFolder)
            let spec = try TaskSpec(contentsOf: settings.taskSpec)
            try settings.method.validate(config: pretrained.config)
            let encoder = ExampleEncoder(tokenizer: pretrained.tokenizer, kind: spec.kind,
                                         maxLength: settings.maxLength)
            let split = { (name: String) in try SplitData(spec: spec, split: name, encoder: encoder) }
            return (pretrained, spec,
                    try split("train").sample(fraction: settings.trainFraction, seed: settings.seed),
                    try split(spec.splits["dev"] == nil ? "train" : "dev"),
                    try spec.splits["test"].map { _ in try split("test") })
        })
        let description = try JSONSerialization.data(withJSONObject: settings.json, options: [.sortedKeys])
        guard Set(communicator.allGather(description)).count == 1 else {
            throw CollectiveError("the ranks were started with different settings; "
                                  + "every rank must run the same command")
        }
        self.settings = settings
        self.folder = folder
        self.communicator = communicator
        let components = try settings.method.components(weights: pretrained.weights, kind: spec.kind,
                                                        seed: settings.seed)
        // A run restored from its checkpoint takes every trainable value from it: the start values
        // are not read again (their files may be gone by now).
        let restoring = resume && FileManager.default.fileExists(atPath: Self.checkpointPath(in: folder))
        if !restoring, let initialPrompt = settings.initialPrompt {
            guard settings.method.method is PTuningV2, let prompt = components.first as? ContinuousPrompt else {
                throw InputError("--initial-prompt",
                                 "a pretrained prompt starts P-tuning v2 only, not \(settings.method.name)")
            }
            try prompt.load(pretrainedPrompt: initialPrompt)
        }
        let head = TaskHead(kind: spec.kind, labels: spec.labels.count,
                            hiddenSize: pretrained.config.hiddenSize, dropout: pretrained.config.headDropout,
                            seed: settings.seed &+ 1)
        if !restoring, let initialHead = settings.initialHead {
            try head.load(pretrainedHeads: initialHead, task: spec.name)
        }
        let model = TunedModel(weights: pretrained.weights, components: components, head: head)
        if !restoring, let initialAdapter = settings.initialAdapter {
            // Reading an adapter attaches its components to the weights it is given (or overwrites
            // them), so it gets a copy of the checkpoint of its own.
            try communicator.agreed(Result {
                let copy = try PretrainedModel(folder: settings.modelFolder).weights
                try PeftAdapter.readStartValues(initialAdapter, into: model, method: settings.method,
                                                weights: copy)
            })
        }
        self.model = model
        try model.checkFits(maxLength: settings.maxLength)
        let optimizer = AdamW(parameters: model.trainable, weightDecay: settings.weightDecay)
        trainingStep = TrainingStep(model: model, communicator: communicator, optimizer: optimizer,
                                    maxGradNorm: settings.maxGradNorm,
                                    paddingId: pretrained.tokenizer.paddingId)
        frozenCache = settings.cacheFrozenLayers ? FrozenOutputCache() : nil
        // Rank 0 alone writes the folder, so it alone checks and locks it; every rank hears the outcome.
        runFolder = try communicator.agreed(Result { () -> RunFolder? in
            guard communicator.isRoot else { return nil }
            let holdsRun = FileManager.default.fileExists(atPath: folder + "/config.json")
            if !resume && holdsRun {
                throw InputError(folder, "already holds a run; pass --resume to continue it, "
                                 + "or choose another --out")
            }
            if !resume && RunFolder.holdsFiles(folder) {
                throw InputError(folder, "exists and holds files that are not a PTune run; choose a new --out "
                                 + "(nothing was changed)")
            }
            if resume && !holdsRun { throw InputError(folder, "holds no run to resume (no config.json)") }
            return try RunFolder(claiming: folder, for: "run")
        })
        StopRequest.install()
        if restoring {
            try restore()
        } else if communicator.isRoot {
            // A new run, or one stopped before its first checkpoint: from the start.
            try writeJSON(settings.json, to: folder + "/config.json")
            try writeAtomically(Data(), to: metricsPath)
        }
        exchange.broadcastValues()
    }

    public var stepsPerEpoch: Int { (train.encoded.count + settings.batchSize - 1) / settings.batchSize }
    public var totalSteps: Int { settings.maxSteps ?? settings.epochs * stepsPerEpoch }
    public var evalEvery: Int { settings.evalEvery ?? stepsPerEpoch }
    public var completedSteps: Int { step }
    private var checkpointPath: String { Self.checkpointPath(in: folder) }
    private static func checkpointPath(in folder: String) -> String { folder + "/checkpoint.safetensors" }
    private var metricsPath: String { folder + "/metrics.jsonl" }
    private var adapterPath: String { folder + "/best_adapter" }

    /// Trains until the schedule ends, early stopping triggers, or `stopAfter` steps are done
    /// (a checkpoint is written then, as at an interruption). Returns the summary once finished.
    @discardableResult
    public func run(stopAfter: Int? = nil) throws -> [String: Any]? {
        let progress = Progress(total: totalSteps, label: label,
                                quiet: !communicator.isRoot, from: step)
        if step == 0 {
            let cut = truncated.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            progress.log("\(train.encoded.count) train, \(dev.encoded.count) \(dev.name) examples; "
                         + "truncated to \(settings.maxLength) tokens: \(cut); "
                         + "\(model.trainableCount) trainable parameters; \(totalSteps) steps")
        }
        let clock = ContinuousClock()
        var lossSum = 0.0, lossCount = 0, tokens = 0, tokenSeconds = 0.0
        var exchangeSecondsBefore = exchange.seconds
        var batches: [[Int]] = []
        var stopped = false
        while step < totalSteps && !stopped {
            let epoch = step / stepsPerEpoch
            if batches.isEmpty || step % stepsPerEpoch == 0 {
                batches = Batching.trainingBatches(lengths: train.lengths, batchSize: settings.batchSize,
                                                   seed: settings.seed &+ UInt64(epoch) &* 0x9E37_79B9,
                                                   order: settings.batching)
            }
            let started = clock.now
            let lr = linearSchedule(step: step, total: totalSteps,
                                    warmup: Int(settings.warmupRatio * Float(totalSteps)),
                                    peak: settings.learningRate)
            let outcome = trainingStep.run(train.encoded, kind: spec.kind,
                                           members: batches[step % stepsPerEpoch], lr: lr,
                                           dropoutSeed: stepSeed(settings.seed, step),
                                           frozenCache: frozenCache)
            // Every rank stops together, before an update: the last checkpoint and the best adapter
            // stay as they were.
            if let nonFinite = outcome.nonFinite {
                progress.finish()
                throw TrainingDiverged(step: step + 1, what: nonFinite, lastCheckpoint: checkpointStep)
            }
            step += 1
            let seconds = (clock.now - started).seconds
            wallSeconds += seconds
            tokenSeconds += seconds
            tokens += outcome.tokens
            lossSum += outcome.loss
            lossCount += 1

            let meanLoss = lossSum / Double(lossCount), rate = Double(tokens) / tokenSeconds
            let status = String(format: "loss %.4f · %.0f tok/s", meanLoss, rate)
            if step % settings.logEvery == 0 || step == totalSteps {
                let communication = (exchange.seconds - exchangeSecondsBefore) / tokenSeconds
                try appendMetrics(["step": step, "epoch": Double(step) / Double(stepsPerEpoch),
                                   "loss": meanLoss, "lr": lr, "tokens_per_s": rate,
                                   "step_ms": 1000 * tokenSeconds / Double(lossCount),
                                   "communication_share": communication])
                exchangeSecondsBefore = exchange.seconds
                progress.update(step, status: status, force: true)
                lossSum = 0; lossCount = 0; tokens = 0; tokenSeconds = 0
            } else {
                progress.update(step, status: status)
            }
            if step % evalEvery == 0 || step == totalSteps {
                stopped = try evaluateAndCheckpoint(progress)
                // A resumed run starts here with empty sums: so does this one.
                lossSum = 0; lossCount = 0; tokens = 0; tokenSeconds = 0
                exchangeSecondsBefore = exchange.seconds
            }
            if let stopAfter, step >= stopAfter, step < totalSteps, !stopped {
                try writeCheckpoint()
                progress.finish()
                return nil
            }
            let signal = StopRequest.agreed(communicator)
            if signal != 0, step < totalSteps, !stopped {
                if checkpointStep != step { try writeCheckpoint() }
                progress.finish()
                throw TrainingInterrupted(signal: signal, step: step, folder: folder)
            }
            if let every = settings.checkpointEvery, step % every == 0, checkpointStep != step,
               step < totalSteps {
                try writeCheckpoint()
            }
        }
        progress.finish()
        return try finish()
    }

    /// Scores dev, keeps the adapter when it is the best so far, writes the checkpoint;
    /// returns whether early stopping says to stop.
    private func evaluateAndCheckpoint(_ progress: Progress) throws -> Bool {
        exchange.checkConsistent(step: step)
        let scores = try score(model, on: dev, progressLabel: "\(label) step \(step): evaluating")
        let primaryScore = scores[primaryMetric(spec)] ?? 0
        var line: [String: Any] = ["step": step, dev.name: scores]
        if settings.evaluateTest, let test {
            line["test"] = try score(model, on: test, progressLabel: "\(label) step \(step): evaluating")
        }
        try appendMetrics(line)
        progress.log("step \(step): \(dev.name) " + scores.sorted { $0.key < $1.key }
            .map { "\($0.key) \(String(format: "%.4f", $0.value))" }.joined(separator: ", "))
        if primaryScore > bestScore {
            bestScore = primaryScore
            bestStep = step
            evaluationsWithoutGain = 0
            if communicator.isRoot {
                let info = AdapterInfo(spec: settings.method, kind: spec.kind, labels: spec.labels,
                                       baseModel: settings.modelFolder)
                try PeftAdapter.write(model, info: info, to: adapterPath)
            }
        } else {
            evaluationsWithoutGain += 1
        }
        try writeCheckpoint()
        if let patience = settings.patience, evaluationsWithoutGain >= patience {
            progress.log("early stop: no gain on \(dev.name) in \(patience) evaluations")
            return true
        }
        return false
    }

    private func writeCheckpoint() throws {
        defer { communicator.barrier() }   // no rank runs ahead of a checkpoint it may need to resume from
        checkpointStep = step
        guard communicator.isRoot else { return }
        try TrainingCheckpoint.write(model, state: optimizer.state, metadata: [
            "step": String(step), "best_score": String(bestScore), "best_step": String(bestStep),
            "evaluations_without_gain": String(evaluationsWithoutGain), "wall_seconds": String(wallSeconds),
        ], to: checkpointPath)
    }

    private func restore() throws {
        let (state, metadata) = try TrainingCheckpoint.read(checkpointPath, into: model)
        func number(_ key: String) throws -> Double {
            guard let value = metadata[key].flatMap(Double.init) else {
                throw InputError(checkpointPath, "metadata lacks '\(key)'")
            }
            return value
        }
        func count(_ key: String, within range: ClosedRange<Int>) throws -> Int {
            guard let value = Int(exactly: try number(key)), range.contains(value) else {
                throw InputError(checkpointPath, "metadata '\(key)' must be a whole number within \(range), "
                                 + "not \(metadata[key]!)")
            }
            return value
        }
        step = try count("step", within: 0...totalSteps)
        bestScore = try number("best_score")
        bestStep = try count("best_step", within: 0...step)
        evaluationsWithoutGain = try count("evaluations_without_gain", within: 0...step)
        wallSeconds = try number("wall_seconds")
        checkpointStep = step
        try optimizer.restore(state: state)
        // Lines written after the checkpoint belong to the interrupted attempt: drop them.
        guard communicator.isRoot else { return }
        // Bytes, not text: a line another program damaged is kept as it is, not the whole file lost.
        let lines = (FileManager.default.contents(atPath: metricsPath) ?? Data())
            .split(separator: UInt8(ascii: "\n"))
        let kept = lines.filter { line in
            let object = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any]
            return (object?["step"] as? Int).map { $0 <= step } ?? true
        }
        try writeAtomically(Data(kept.map { $0 + [UInt8(ascii: "\n")] }.joined()), to: metricsPath)
    }

    private func appendMetrics(_ object: [String: Any]) throws {
        guard communicator.isRoot else { return }
        let line = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) + Data("\n".utf8)
        guard let handle = FileHandle(forWritingAtPath: metricsPath) else {
            throw InputError(metricsPath, "cannot append")
        }
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: line)
    }

    /// Scores the best adapter on test (or dev when the task has no test split) and writes the summary.
    private func finish() throws -> [String: Any] {
        communicator.barrier()   // the best adapter is on disk
        var summary: [String: Any] = [
            "task": spec.name, "method": settings.method.json, "trainable_parameters": model.trainableCount,
            "steps": step, "best_step": bestStep, "train_seconds": wallSeconds,
            "truncated_examples": Dictionary(uniqueKeysWithValues: truncated),
            "primary_metric": primaryMetric(spec),
        ]
        let best = try PretrainedModel(folder: settings.modelFolder)
        let (adapter, _) = try PeftAdapter.read(adapterPath, weights: best.weights)
        let scoring = "\(label): scoring the best adapter (step \(bestStep)) on"
        summary[dev.name] = try score(adapter, on: dev, progressLabel: scoring)
        if let test { summary["test"] = try score(adapter, on: test, progressLabel: scoring) }
        summary["baseline"] = baselineScores(spec, train: train.examples, on: (test ?? dev).examples,
                                             lowercase: pretrained.tokenizer.basic.lowercase)
        summary["ranks"] = communicator.size
        if communicator.isRoot { try writeJSON(summary, to: folder + "/summary.json") }
        return summary
    }

    /// The metrics of `model` on `split`, computed over the ranks.
    private func score(_ model: TunedModel, on split: SplitData, progressLabel: String) throws -> Scores {
        try evaluate(model, on: split, batchSize: settings.batchSize,
                     paddingId: pretrained.tokenizer.paddingId, communicator: communicator,
                     progressLabel: progressLabel).scores
    }
}

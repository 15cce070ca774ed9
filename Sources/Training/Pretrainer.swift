import Distributed
import Foundation
import Kernels
import Model
import Tasks
import Tuning

/// P-tuning v2's multi-task prompt pretraining: one deep prompt shared by every task, a
/// head per task, every global step drawn from one task (the same on every rank: a seeded
/// sampler, proportional to the tasks' sizes raised to 1/temperature). Data-parallel over
/// the ranks like `Trainer`; a step exchanges the gradients of the prompt and of its task's
/// head only, and AdamW leaves the other heads untouched.
///
/// Writes `prompt.safetensors` (the prompt, as `prompt_encoder.embedding.weight`),
/// `metrics.jsonl` and `summary.json` to its folder (rank 0).
public final class PromptPretrainer {
    public struct Settings {
        public var tasks: [String]
        public var modelFolder: String
        public var promptLength = 16
        public var promptDropout: Float = 0
        public var steps = 300
        public var batchSize = 16
        public var learningRate: Float = 1e-2
        public var temperature: Double = 1
        /// The share of each task's training split pretrained on (the sample adaptation draws with
        /// this seed).
        public var trainFraction: Double = 1
        public var seed: UInt64 = 42
        public var maxLength = 128
        public var logEvery = 10
        public var warmupRatio: Float = 0.06
        public var weightDecay: Float = 0.01
        public var maxGradNorm: Float = 1
        /// Bucketed: a pretraining step is one task's batch, counted in steps rather than epochs, so
        /// the padding bucketing saves is pure time (the pipeline's budget); adaptation shuffles.
        public var batching = BatchOrder.bucketed

        public init(tasks: [String], modelFolder: String) {
            self.tasks = tasks
            self.modelFolder = modelFolder
        }

        var method: MethodSpec { .ptv2(length: promptLength, dropout: promptDropout, positionOffset: nil) }

        /// Checks the numbers; errors name the option.
        func validate() throws {
            for (name, value) in [("--pretrain-steps", steps), ("--pretrain-batch-size", batchSize),
                                  ("--max-length", maxLength), ("--log-every", logEvery)] where value <= 0 {
                throw InputError(name, "must be positive, not \(value)")
            }
            try validateTrainFraction(trainFraction)
            guard temperature > 0, temperature.isFinite else {
                throw InputError("--temperature", "must be a positive finite number, not \(temperature)")
            }
            try validateOptimizer(learningRate: learningRate, weightDecay: weightDecay,
                                  warmupRatio: warmupRatio, maxGradNorm: maxGradNorm,
                                  learningRateOption: "--pretrain-lr")
        }
    }

    public let settings: Settings
    public let folder: String
    public let communicator: Communicator
    public let prompt: ContinuousPrompt
    private let pretrained: PretrainedModel
    private let specs: [TaskSpec]
    private let data: [SplitData]
    /// One per task, over the task's model (the shared prompt and its head); one AdamW over the
    /// prompt and every head.
    private let trainingSteps: [TrainingStep]

    public init(settings: Settings, folder: String, communicator: Communicator = SingleProcess()) throws {
        guard !settings.tasks.isEmpty else { throw InputError("--tasks", "name at least one task spec") }
        try settings.validate()
        guard settings.batchSize >= communicator.size else {
            throw InputError("--batch-size", "the global batch of \(settings.batchSize) cannot be shared by "
                             + "\(communicator.size) ranks")
        }
        self.settings = settings
        self.folder = folder
        self.communicator = communicator
        // Files may load on one rank and not another (another node's file system): agree first.
        let (pretrained, specs, data) = try communicator.agreed(Result {
            let pretrained = try PretrainedModel(folder: settings.modelFolder)
            let specs = try settings.tasks.map { try TaskSpec(contentsOf: $0) }
            return (pretrained, specs, try specs.map {
                let encoder = ExampleEncoder(tokenizer: pretrained.tokenizer, kind: $0.kind,
                                             maxLength: settings.maxLength)
                return try SplitData(spec: $0, split: "train", encoder: encoder)
                    .sample(fraction: settings.trainFraction, seed: settings.seed)
            })
        })
        (self.pretrained, self.specs, self.data) = (pretrained, specs, data)
        try specs.checkNamesUnique()
        let components = try settings.method.components(weights: pretrained.weights, seed: settings.seed)
        guard let shared = components.first as? ContinuousPrompt else {
            preconditionFailure("P-tuning v2 builds a prompt")
        }
        prompt = shared
        let encoder = BertEncoder(weights: pretrained.weights)
        let models = specs.enumerated().map { index, spec in
            TunedModel(encoder: encoder, components: [shared],
                       head: TaskHead(kind: spec.kind, labels: spec.labels.count,
                                      hiddenSize: pretrained.config.hiddenSize,
                                      dropout: pretrained.config.headDropout,
                                      seed: settings.seed &+ UInt64(index) &+ 1))
        }
        try models[0].checkFits(maxLength: settings.maxLength)
        let optimizer = AdamW(parameters: shared.parameters + models.flatMap(\.head.parameters),
                              weightDecay: settings.weightDecay)
        trainingSteps = models.map {
            TrainingStep(model: $0, communicator: communicator, optimizer: optimizer,
                         maxGradNorm: settings.maxGradNorm, paddingId: pretrained.tokenizer.paddingId)
        }
        for step in trainingSteps { step.exchange.broadcastValues() }
    }

    /// The task each step trains: seeded, identical on every rank, with probabilities
    /// proportional to size^(1/temperature).
    public func schedule() -> [Int] {
        let weights = data.map { pow(Double($0.encoded.count), 1 / settings.temperature) }
        let total = weights.reduce(0, +)
        var random = SplitMix(seed: settings.seed ^ 0x7461_736B)
        return (0..<settings.steps).map { _ in
            var draw = Double.random(in: 0..<total, using: &random)
            for (index, weight) in weights.enumerated() {
                draw -= weight
                if draw < 0 { return index }
            }
            return weights.count - 1
        }
    }

    /// Trains the prompt, or with `resume` reuses one an earlier run of this folder finished.
    @discardableResult
    public func run(resume: Bool = false) throws -> [String: Any] {
        let promptPath = folder + "/prompt.safetensors"
        if resume, FileManager.default.fileExists(atPath: promptPath),
           let summary = try? JSONSerialization.jsonObject(
               with: Data(contentsOf: URL(fileURLWithPath: folder + "/summary.json"))) as? [String: Any] {
            return summary
        }
        // Rank 0 alone writes the folder: it checks and locks it, every rank hears the outcome.
        let lock = try communicator.agreed(Result { () -> RunFolder? in
            guard communicator.isRoot else { return nil }
            if !resume && FileManager.default.fileExists(atPath: promptPath) {
                throw InputError(folder, "already holds a pretrained prompt; pass --resume to keep it, "
                                 + "or choose another --out")
            }
            let ours = ["prompt.safetensors", "heads.safetensors", "metrics.jsonl", "summary.json",
                        RunFolder.lockName]
            let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
            if let other = names.first(where: { !ours.contains($0) && !$0.hasPrefix(".") }) {
                throw InputError(folder, "holds '\(other)', which is not a pretraining's file; "
                                 + "choose a new --out")
            }
            return try RunFolder(claiming: folder, for: "pretraining")
        })
        defer { withExtendedLifetime(lock) {} }
        let progress = Progress(total: settings.steps, label: "\(communicator.logPrefix)pretrain",
                                quiet: !communicator.isRoot)
        let sizes = zip(specs, data).map { "\($0.name) (\($1.encoded.count))" }.joined(separator: ", ")
        progress.log("multi-task prompt pretraining on \(sizes); "
                     + "\(prompt.embedding.value.count) shared prompt parameters")
        var cursors = [Int](repeating: 0, count: data.count), epochs = [Int](repeating: 0, count: data.count)
        var orders = data.indices.map { index in
            Batching.trainingBatches(lengths: data[index].lengths, batchSize: settings.batchSize,
                                     seed: settings.seed &+ UInt64(index), order: settings.batching)
        }
        var lossSums = [Double](repeating: 0, count: data.count)
        var stepsPerTask = [Int](repeating: 0, count: data.count)
        var metrics = ""
        let clock = ContinuousClock(), start = clock.now
        var tokens = 0
        for (step, task) in schedule().enumerated() {
            if cursors[task] == orders[task].count {   // the task's epoch ended: a new order
                epochs[task] += 1
                cursors[task] = 0
                let seed = settings.seed &+ UInt64(task) &+ UInt64(epochs[task]) &* 0x9E37_79B9
                orders[task] = Batching.trainingBatches(lengths: data[task].lengths,
                                                        batchSize: settings.batchSize, seed: seed,
                                                        order: settings.batching)
            }
            let members = orders[task][cursors[task]]
            cursors[task] += 1
            let lr = linearSchedule(step: step, total: settings.steps,
                                    warmup: Int(settings.warmupRatio * Float(settings.steps)),
                                    peak: settings.learningRate)
            let outcome = trainingSteps[task].run(data[task].encoded, kind: specs[task].kind,
                                                  members: members, lr: lr,
                                                  dropoutSeed: stepSeed(settings.seed, step))
            // Stops before the update, every rank together; nothing has been written yet.
            if let nonFinite = outcome.nonFinite {
                progress.finish()
                throw TrainingDiverged(step: step + 1, what: nonFinite, lastCheckpoint: 0,
                                       advice: "a lower --pretrain-lr")
            }
            let loss = outcome.loss
            lossSums[task] += loss
            stepsPerTask[task] += 1
            tokens += outcome.tokens
            metrics += String(format: "{\"step\":%d,\"task\":\"%@\",\"loss\":%.6f,\"lr\":%g}\n",
                              step + 1, specs[task].name, loss, lr)
            let rate = Double(tokens) / (clock.now - start).seconds
            let status = String(format: "%@ loss %.4f · %.0f tok/s", specs[task].name, loss, rate)
            progress.update(step + 1, status: status,
                            force: (step + 1) % settings.logEvery == 0)
        }
        progress.finish()
        let names = specs.map(\.name)
        let meanLosses = zip(lossSums, stepsPerTask).map { $1 > 0 ? $0 / Double($1) : 0 }
        let summary: [String: Any] = [
            "tasks": names, "steps": settings.steps,
            "steps_per_task": Dictionary(uniqueKeysWithValues: zip(names, stepsPerTask)),
            "mean_loss_per_task": Dictionary(uniqueKeysWithValues: zip(names, meanLosses)),
            "prompt_length": settings.promptLength, "train_seconds": (clock.now - start).seconds,
            "ranks": communicator.size, "precision": MatrixEngine.precision.rawValue,
        ]
        if communicator.isRoot {
            try writeSafeTensors([(prompt.embedding.name, prompt.embedding.value)],
                                 to: folder + "/prompt.safetensors")
            // Each task's head too, under its task's name: an adaptation may start from it
            // (`--initial-head`).
            try writeSafeTensors(zip(specs, trainingSteps).flatMap { spec, step in
                step.model.head.parameters.map { (TaskHead.pretrainedName(task: spec.name, $0.name), $0.value) }
            }, to: folder + "/heads.safetensors")
            try writeAtomically(Data(metrics.utf8), to: folder + "/metrics.jsonl")
            try writeJSON(summary, to: folder + "/summary.json")
        }
        communicator.barrier()
        return summary
    }
}

extension TaskHead {
    /// The name of a task's head tensor in pretraining's `heads.safetensors`.
    static func pretrainedName(task: String, _ tensor: String) -> String { task + "/" + tensor }

    /// Starts the head from the one pretraining trained for `task` (its `heads.safetensors`).
    public func load(pretrainedHeads path: String, task: String) throws {
        let file = try SafeTensorsFile(path: path)
        let names = parameters.map { Self.pretrainedName(task: task, $0.name) }
        if let missing = names.first(where: { file.tensors[$0] == nil }) {
            throw InputError(path, "holds no head for task '\(task)' (no tensor '\(missing)'); "
                             + "it was pretrained on other tasks")
        }
        try file.read(Array(zip(names, parameters)))
    }
}

extension ContinuousPrompt {
    /// Starts the prompt from a pretrained one (`prompt.safetensors` from `PromptPretrainer`).
    public func load(pretrainedPrompt path: String) throws {
        try SafeTensorsFile(path: path).read(embedding.name, into: embedding)
    }
}

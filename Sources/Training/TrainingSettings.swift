import Foundation
import Kernels
import Model
import Tasks
import Tuning

/// Everything that decides a training run, written to the run folder as `config.json`
/// so `--resume` rebuilds the same run.
public struct TrainingSettings: Equatable {
    public var taskSpec: String
    public var modelFolder: String
    public var method: MethodSpec
    public var epochs: Int = 3
    /// Stop after this many steps instead of `epochs` (the schedule spans them).
    public var maxSteps: Int?
    public var batchSize: Int = 32
    /// Shuffled, as the Python stack's DataLoader: bucketed batches of one length each weigh a
    /// short example's labelled pieces more and cost LoRA 1 to 3.4 points on tagging (README).
    public var batching: BatchOrder = .shuffled
    public var learningRate: Float
    public var weightDecay: Float = 0.01
    public var warmupRatio: Float = 0.06
    public var maxGradNorm: Float = 1.0
    /// Evaluate on dev every N steps (default: once an epoch) and at the end.
    public var evalEvery: Int?
    /// Also score test at each evaluation, for learning curves (the best step is still dev's).
    public var evaluateTest = false
    /// Stop after this many evaluations without improvement (nil: never).
    public var patience: Int?
    /// Also write a checkpoint every this many steps (nil: at evaluations and signals only).
    public var checkpointEvery: Int?
    public var seed: UInt64 = 42
    public var maxLength: Int = 128
    /// The share of the training split trained on (a seeded sample; 1: all of it).
    public var trainFraction: Double = 1
    public var logEvery: Int = 10
    /// A pretrained prompt to start P-tuning v2 from (`prompt.safetensors` of `ptune pretrain`).
    public var initialPrompt: String?
    /// Pretraining's `heads.safetensors`: the task's head starts from the one pretrained for it.
    public var initialHead: String?
    /// An adapter folder (PTune's or PEFT's, of this method) whose values every trainable
    /// parameter starts from: to continue training it, or to start two stacks from one point.
    public var initialAdapter: String?
    /// Run the layers below the lowest trainable one without dropout and keep their output per
    /// training example, so epochs after the first skip them (Freeze tuning; see `FrozenOutputCache`).
    public var cacheFrozenLayers = false
    /// The matrix products' precision; a resumed run keeps the one it started with.
    public var precision: Precision = .fp32

    public init(taskSpec: String, modelFolder: String, method: MethodSpec, learningRate: Float? = nil) {
        self.taskSpec = taskSpec
        self.modelFolder = modelFolder
        self.method = method
        self.learningRate = learningRate ?? Self.defaultLearningRate(method)
    }

    /// The method's own default (see each method's `defaultLearningRate`).
    public static func defaultLearningRate(_ method: MethodSpec) -> Float { method.defaultLearningRate }

    public var json: [String: Any] {
        var object: [String: Any] = [
            "task": taskSpec, "model": modelFolder, "method": method.json, "epochs": epochs, "batch_size": batchSize,
            "lr": learningRate, "weight_decay": weightDecay, "warmup_ratio": warmupRatio, "max_grad_norm": maxGradNorm,
            "seed": seed, "max_length": maxLength, "log_every": logEvery,
            "precision": precision.rawValue, "batching": batching.rawValue,
        ]
        if let maxSteps { object["max_steps"] = maxSteps }
        if let evalEvery { object["eval_every"] = evalEvery }
        if let patience { object["patience"] = patience }
        if let checkpointEvery { object["checkpoint_every"] = checkpointEvery }
        if let initialPrompt { object["initial_prompt"] = initialPrompt }
        if let initialHead { object["initial_head"] = initialHead }
        if let initialAdapter { object["initial_adapter"] = initialAdapter }
        if cacheFrozenLayers { object["cache_frozen_layers"] = true }
        if evaluateTest { object["evaluate_test"] = true }
        if trainFraction < 1 { object["train_fraction"] = trainFraction }
        return object
    }

    public init(json: [String: Any], source: String) throws {
        let fields = JSONFields(json, source: source)
        guard let method = json["method"] as? [String: Any] else { throw InputError(source, "missing field 'method'") }
        self.init(taskSpec: try fields.string("task"), modelFolder: try fields.string("model"),
                  method: try MethodSpec(json: method, source: source), learningRate: try fields.float("lr"))
        epochs = try fields.int("epochs")
        batchSize = try fields.int("batch_size")
        weightDecay = try fields.float("weight_decay")
        warmupRatio = try fields.float("warmup_ratio")
        maxGradNorm = try fields.float("max_grad_norm")
        seed = UInt64(try fields.int("seed"))
        maxLength = try fields.int("max_length")
        logEvery = try fields.int("log_every")
        maxSteps = json["max_steps"] as? Int
        evalEvery = json["eval_every"] as? Int
        patience = json["patience"] as? Int
        checkpointEvery = json["checkpoint_every"] as? Int
        initialPrompt = json["initial_prompt"] as? String
        initialHead = json["initial_head"] as? String
        initialAdapter = json["initial_adapter"] as? String
        cacheFrozenLayers = json["cache_frozen_layers"] as? Bool ?? false
        evaluateTest = json["evaluate_test"] as? Bool ?? false
        trainFraction = json["train_fraction"] as? Double ?? 1
        // Runs from before the field existed bucketed their batches.
        let order = json["batching"] ?? BatchOrder.bucketed.rawValue
        guard let name = order as? String, let batching = BatchOrder(rawValue: name) else {
            throw InputError(source, "field 'batching' must be one of \(BatchOrder.allCases.map(\.rawValue)), not \(order)")
        }
        self.batching = batching
        // Runs from before the field existed computed in float32.
        if let stored = json["precision"] {
            guard let name = stored as? String, let precision = Precision(rawValue: name) else {
                throw InputError(source, "field 'precision' must be \"fp32\" or \"bf16\", not \(stored)")
            }
            self.precision = precision
        }
    }

    /// Checks the numbers; errors name the option.
    public func validate() throws {
        for (name, value) in [("--batch-size", batchSize), ("--epochs", epochs), ("--max-length", maxLength),
                              ("--log-every", logEvery)] where value <= 0 {
            throw InputError(name, "must be positive, not \(value)")
        }
        if let maxSteps, maxSteps <= 0 { throw InputError("--max-steps", "must be positive, not \(maxSteps)") }
        if let evalEvery, evalEvery <= 0 { throw InputError("--eval-every", "must be positive, not \(evalEvery)") }
        if let checkpointEvery, checkpointEvery <= 0 {
            throw InputError("--checkpoint-every", "must be positive, not \(checkpointEvery)")
        }
        if let patience, patience <= 0 { throw InputError("--patience", "must be positive, not \(patience)") }
        guard maxLength >= 8 else { throw InputError("--max-length", "must be at least 8, not \(maxLength)") }
        if initialAdapter != nil && (initialPrompt != nil || initialHead != nil) {
            throw InputError("--initial-adapter", "sets every start value, so it does not combine with a "
                             + "pretrained prompt or head")
        }
        try validateTrainFraction(trainFraction)
        try validateOptimizer(learningRate: learningRate, weightDecay: weightDecay, warmupRatio: warmupRatio,
                              maxGradNorm: maxGradNorm)
    }
}

/// Checks `--train-fraction`: a share of the training split, in (0, 1].
func validateTrainFraction(_ fraction: Double) throws {
    guard fraction > 0, fraction <= 1 else {
        throw InputError("--train-fraction", "must be a share of the training split in (0, 1], not \(fraction)")
    }
}

/// Checks AdamW's and the schedule's numbers, shared by training and pretraining; errors name the option.
func validateOptimizer(learningRate: Float, weightDecay: Float, warmupRatio: Float, maxGradNorm: Float,
                       learningRateOption: String = "--lr") throws {
    guard learningRate > 0, learningRate.isFinite else {
        throw InputError(learningRateOption, "must be a positive finite number, not \(learningRate)")
    }
    guard weightDecay >= 0, weightDecay.isFinite else {
        throw InputError("--weight-decay", "must be a finite number at least 0, not \(weightDecay)")
    }
    guard (0...1).contains(warmupRatio) else {
        throw InputError("--warmup-ratio", "must be in [0, 1] (a share of the steps), not \(warmupRatio)")
    }
    guard maxGradNorm >= 0, maxGradNorm.isFinite else {
        throw InputError("--max-grad-norm", "must be a finite number at least 0 (0: no clipping), not \(maxGradNorm)")
    }
}

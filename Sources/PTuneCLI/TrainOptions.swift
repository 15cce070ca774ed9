import ArgumentParser
import Kernels
import Tasks
import Training
import Tuning

extension BatchOrder: ExpressibleByArgument {}

/// The settings of a training run, as `train`, `adapt` and `run` take them.
struct TrainOptions: ParsableArguments {
    @Option(help: "Epochs over the training split.") var epochs = 3
    @Option(help: "Train this many steps instead of --epochs.") var maxSteps: Int?
    @Option(help: "Examples per step: the global batch, shared by the ranks.") var batchSize = 32
    @Option(help: ArgumentHelp("How an epoch is cut into batches: shuffled (as a PyTorch DataLoader) or "
                               + "bucketed (similar lengths together: less padding, so faster, but LoRA "
                               + "learned tagging 1 to 3.4 points worse)."))
    var batching = BatchOrder.shuffled
    @Option(help: "AdamW weight decay (none on biases, LayerNorm and prompts).") var weightDecay: Float = 0.01
    @Option(help: "Share of the steps spent warming up the learning rate.") var warmupRatio: Float = 0.06
    @Option(help: "Clip the gradients' global norm to this (0: no clipping).") var maxGradNorm: Float = 1
    @Option(help: "Evaluate on dev every N steps (default: each epoch).") var evalEvery: Int?
    @Option(help: "Stop after N evaluations without improvement.") var patience: Int?
    @Flag(help: "Also score test at each evaluation into metrics.jsonl, for learning curves (the best step is still chosen on dev).")
    var evaluateTest = false
    @Option(help: "Write a checkpoint every N steps too, besides each evaluation and SIGINT/SIGTERM (0: only then).")
    var checkpointEvery = 100
    @Option(help: "Seed of initial values, batch order and dropout.") var seed: UInt64 = 42
    @Option(help: "Truncate examples to this many tokens.") var maxLength = 128
    @Option(help: "Log every N steps.") var logEvery = 10
    @Option(help: "Train on this share of each training split, a sample drawn by --seed (few-shot; 1: all of it).")
    var trainFraction: Double = 1
    /// The settings for one task, P-tuning v2 starting from `initialPrompt` and the head from
    /// `initialHead` (pretraining's heads) when given.
    func settings(task: String, model: String, method: MethodSpec, learningRate: Float?, cacheFrozenLayers: Bool = false,
                  initialPrompt: String? = nil, initialHead: String? = nil) -> TrainingSettings {
        var settings = TrainingSettings(taskSpec: absolute(task), modelFolder: absolute(model), method: method,
                                        learningRate: learningRate)
        settings.initialPrompt = initialPrompt.map(absolute)
        settings.initialHead = initialHead.map(absolute)
        settings.epochs = epochs
        settings.maxSteps = maxSteps
        settings.batchSize = batchSize
        settings.batching = batching
        settings.evaluateTest = evaluateTest
        settings.weightDecay = weightDecay
        settings.warmupRatio = warmupRatio
        settings.maxGradNorm = maxGradNorm
        settings.evalEvery = evalEvery
        settings.patience = patience
        settings.checkpointEvery = checkpointEvery == 0 ? nil : checkpointEvery
        settings.seed = seed
        settings.maxLength = maxLength
        settings.logEvery = logEvery
        settings.trainFraction = trainFraction
        settings.cacheFrozenLayers = cacheFrozenLayers
        settings.precision = MatrixEngine.precision
        return settings
    }
}

/// The training options that depend on the method, for the commands that let a user choose one
/// (`train`, `adapt`); `run` trains P-tuning v2 only and takes `PromptTrainingOptions`.
struct MethodTrainingOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Peak learning rate (default by method: "
                               + TuningMethods.all.map { "\($0.name) \($0.defaultLearningRate)" }.joined(separator: ", ") + ")."))
    var lr: Float?

    @Flag(help: "Run the layers below the lowest trainable one without dropout and keep their output per training example, so later epochs skip them (Freeze tuning; memory: 4 bytes x hidden size per token).")
    var cacheFrozenLayers = false
}

/// `run`'s learning rate: its adaptation is P-tuning v2's.
struct PromptTrainingOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Peak learning rate of the adaptation (default \(PTuningV2.defaultLearningRate), P-tuning v2's)."))
    var lr: Float?
}

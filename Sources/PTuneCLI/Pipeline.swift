import ArgumentParser
import Distributed
import Foundation
import Model
import Training
import Tuning

/// The tasks a multi-task command works on.
struct TaskList: ParsableArguments {
    @Option(help: "Comma-separated task spec files (default: the six in datasets/).")
    var tasks = "datasets/sentiment.json,datasets/news.json,datasets/hedge.json,datasets/ner.json,datasets/pos-oanc.json,datasets/pos-wsj.json"

    var specs: [String] { tasks.split(separator: ",").map { absolute(String($0).trimmingCharacters(in: .whitespaces)) } }
}

/// Options of multi-task prompt pretraining.
struct PretrainOptions: ParsableArguments {
    @Option(help: "Deep prompt length P.") var promptLength = 16
    // 0 as PEFT's prefix tuning: 0.1 cost 0.6 points of test token accuracy on pos-wsj (3 seeds; README).
    @Option(help: "Dropout on the prompt in training.") var promptDropout: Float = 0
    @Option(help: "Pretraining steps, each on one task.") var pretrainSteps = 300
    @Option(help: "Global batch of a pretraining step.") var pretrainBatchSize = 16
    @Option(help: "Peak learning rate of pretraining.") var pretrainLr: Float = 1e-2
    @Option(help: "Task sampling temperature: 1 samples in proportion to size, larger evens the tasks out.")
    var temperature: Double = 2

    func settings(tasks: [String], model: String, seed: UInt64, maxLength: Int, trainFraction: Double)
        -> PromptPretrainer.Settings {
        var settings = PromptPretrainer.Settings(tasks: tasks, modelFolder: absolute(model))
        settings.promptLength = promptLength
        settings.promptDropout = promptDropout
        settings.steps = pretrainSteps
        settings.batchSize = pretrainBatchSize
        settings.learningRate = pretrainLr
        settings.temperature = temperature
        settings.seed = seed
        settings.maxLength = maxLength
        settings.trainFraction = trainFraction
        return settings
    }
}

/// Where a multi-task job runs its tasks and writes its results, shared by `adapt` and `run`.
struct JobOptions: ParsableArguments {
    @Option(help: "Rank groups training tasks side by side (at most the number of ranks).") var groups = 1
    @Option(help: "Folder for the job: runs/ and registry/ (run: also pretrain/, scratch/ and results.md).") var out: String
    @Flag(help: "Continue an interrupted job in --out: finished stages and tasks are kept, interrupted ones resume from their checkpoint.")
    var resume = false
}

struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Multi-task prompt pretraining (P-tuning v2): one deep prompt shared by the tasks, a head each, across all ranks.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var taskList: TaskList
    @OptionGroup var pretrain: PretrainOptions
    @Option(help: "Folder for prompt.safetensors, metrics.jsonl and summary.json.") var out: String
    @Option(help: "Seed.") var seed: UInt64 = 42
    @Option(help: "Truncate examples to this many tokens.") var maxLength = 128
    @Option(help: "Pretrain on this share of each training split, a sample drawn by --seed (as train's --train-fraction).")
    var trainFraction: Double = 1
    @Flag(help: "Keep the prompt an earlier run of --out finished.") var resume = false
    @OptionGroup var precision: PrecisionOptions

    func run() throws {
        try precision.apply()
        try withCommunicator { world in
            try PromptPretrainer(settings: pretrain.settings(tasks: taskList.specs, model: model.folder, seed: seed, maxLength: maxLength,
                                                         trainFraction: trainFraction),
                                 folder: out, communicator: world).run(resume: resume)
        }
    }
}

struct Adapt: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Adapt every task side by side: the ranks split into groups, each trains its tasks; rank 0 writes the adapter registry.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var taskList: TaskList
    @OptionGroup var method: MethodOptions
    @OptionGroup var options: TrainOptions
    @OptionGroup var methodOptions: MethodTrainingOptions
    @Option(help: "Start P-tuning v2 from this pretrained prompt (prompt.safetensors of ptune pretrain).") var initialPrompt: String?
    @Option(help: "Start each task's head from the one pretrained for it (heads.safetensors of ptune pretrain).")
    var initialHead: String?
    @OptionGroup var job: JobOptions
    @OptionGroup var precision: PrecisionOptions

    func run() throws {
        try precision.apply()
        try withCommunicator { world in
            let adaptation = try Adaptation(world: world, groups: job.groups, out: job.out, resume: job.resume)
            let spec = try method.spec()
            let results = try adaptation.run(tasks: taskList.specs) {
                options.settings(task: $0, model: model.folder, method: spec, learningRate: methodOptions.lr,
                                 cacheFrozenLayers: methodOptions.cacheFrozenLayers, initialPrompt: initialPrompt,
                                 initialHead: initialHead)
            }
            if world.isRoot { print(resultsTable([("", results)])) }
        }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The whole pipeline: multi-task prompt pretraining, then every task adapted from the pretrained prompt and from scratch, the adapter registry and a table comparing the two.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var taskList: TaskList
    @OptionGroup var pretrain: PretrainOptions
    @OptionGroup var options: TrainOptions
    @OptionGroup var learningRate: PromptTrainingOptions
    // On by default: over 3 seeds the mean test gain of pretraining rose from +0.006 to +0.013, and
    // sentiment no longer collapsed from a pretrained prompt under a fresh head (README, scripts/mpt_study.sh).
    @Flag(inversion: .prefixedNo,
          help: "Start each task's head from the one pretraining trained for it, besides the prompt (--no-pretrained-heads: a fresh head).")
    var pretrainedHeads = true
    @Option(help: "Peak learning rate of the adaptations from the pretrained prompt (default: --lr, as from scratch).")
    var pretrainedLr: Float?
    @OptionGroup var job: JobOptions
    @OptionGroup var precision: PrecisionOptions

    func run() throws {
        try precision.apply()
        let (groups, out, resume) = (job.groups, job.out, job.resume)
        try withCommunicator { world in
            let pretrainer = try PromptPretrainer(
                settings: pretrain.settings(tasks: taskList.specs, model: model.folder, seed: options.seed,
                                            maxLength: options.maxLength, trainFraction: options.trainFraction),
                folder: out + "/pretrain", communicator: world)
            try pretrainer.run(resume: resume)
            let heads = out + "/pretrain/heads.safetensors"
            if pretrainedHeads, !FileManager.default.fileExists(atPath: heads) {
                throw InputError(heads, "missing: this folder's pretraining predates pretrained heads; resume with "
                                 + "--no-pretrained-heads, or pretrain again in a new --out")
            }
            let method = MethodSpec.ptv2(length: pretrain.promptLength, dropout: pretrain.promptDropout, positionOffset: nil)
            let adaptation = try Adaptation(world: world, groups: groups, out: out, resume: resume,
                                            stage: "[from the pretrained prompt]")
            let pretrained = try adaptation.run(tasks: taskList.specs) {
                options.settings(task: $0, model: model.folder, method: method,
                                 learningRate: pretrainedLr ?? learningRate.lr,
                                 initialPrompt: out + "/pretrain/prompt.safetensors",
                                 initialHead: pretrainedHeads ? heads : nil)
            }
            // From scratch: the comparison, not part of the registry.
            let scratch = try Adaptation(world: world, groups: groups, out: out + "/scratch", resume: resume,
                                         stage: "[from scratch]")
                .run(tasks: taskList.specs) {
                    options.settings(task: $0, model: model.folder, method: method, learningRate: learningRate.lr)
                }
            if world.isRoot {
                let table = resultsTable([("pretrained prompt", pretrained), ("from scratch", scratch)])
                try writeAtomically(Data(table.utf8), to: out + "/results.md")
                print(table)
            }
        }
    }
}

/// A Markdown table of task summaries, one row per task: the baseline's test score (the most
/// frequent label, or each word's most frequent tag), then dev and test on the primary metric of
/// each variant side by side, and with two variants the first's gain on test.
func resultsTable(_ variants: [(name: String, results: [[String: Any]])]) -> String {
    let tasks = Set(variants.flatMap { $0.results.compactMap { $0["task"] as? String } }).sorted()
    func summary(_ task: String, _ variant: Int) -> [String: Any]? {
        variants[variant].results.first { $0["task"] as? String == task }
    }
    func score(_ result: [String: Any]?, _ split: String) -> Double? {
        guard let result, let metric = result["primary_metric"] as? String else { return nil }
        return (result[split] as? [String: Double])?[metric]
    }
    let format = { (value: Double?) in value.map { String(format: "%.3f", $0) } ?? "–" }
    let named = variants.map { $0.name.isEmpty ? "" : "\($0.name) " }
    var header = ["task", "metric", "baseline (test)"] + named.flatMap { ["\($0)dev", "\($0)test"] }
    if variants.count == 2 { header.append("gain (test)") }
    header += ["steps", "wall s"]
    var lines = ["| " + header.joined(separator: " | ") + " |", "|" + String(repeating: "---|", count: header.count)]
    for task in tasks {
        let first = variants.indices.lazy.compactMap { summary(task, $0) }.first
        var cells = [task, first?["primary_metric"] as? String ?? "", format(score(first, "baseline"))]
        cells += variants.indices.flatMap { [format(score(summary(task, $0), "dev")), format(score(summary(task, $0), "test"))] }
        if variants.count == 2 {
            let (a, b) = (score(summary(task, 0), "test"), score(summary(task, 1), "test"))
            cells.append(a.flatMap { a in b.map { String(format: "%+.3f", a - $0) } } ?? "–")
        }
        let runs = variants.indices.compactMap { summary(task, $0) }
        cells.append(runs.map { "\($0["steps"] ?? "")" }.joined(separator: " / "))
        cells.append(runs.map { String(format: "%.0f", $0["wall_seconds"] as? Double ?? 0) }.joined(separator: " / "))
        lines.append("| " + cells.joined(separator: " | ") + " |")
    }
    return lines.joined(separator: "\n") + "\n"
}

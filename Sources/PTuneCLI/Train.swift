import ArgumentParser
import Distributed
import Foundation
import Model
import Tasks
import Training
import Tuning

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train one task with one method, as one process or data-parallel under mpirun; writes a run folder with metrics, the best adapter and a resumable checkpoint.")

    @OptionGroup var model: ModelOptions

    @Option(help: "Task spec file (JSON).")
    var task: String?

    @OptionGroup var method: MethodOptions

    @Option(help: "Run folder to create (with --resume: the run to continue).")
    var out: String?

    @Flag(help: "Continue the interrupted run in --out (its config.json decides everything else).")
    var resume = false

    @OptionGroup var options: TrainOptions
    @OptionGroup var methodOptions: MethodTrainingOptions
    @Option(help: ArgumentHelp("Start every trainable parameter, head included, from this adapter "
                               + "folder (PTune's or PEFT's, of this method and settings): to train it "
                               + "further, or to start two stacks from one point."))
    var initialAdapter: String?
    @OptionGroup var precision: PrecisionOptions

    func run() throws {
        try withCommunicator { communicator in try train(communicator) }
    }

    private func train(_ communicator: Communicator) throws {
        let trainer: Trainer
        guard let out else { throw ValidationError("--out is required: the run folder to create, or with --resume to continue") }
        if resume {
            let configPath = out + "/config.json"
            let settings = try TrainingSettings(json: try JSONFields(contentsOf: configPath).json, source: configPath)
            try precision.apply(stored: settings.precision)
            trainer = try Trainer(settings: settings, folder: out, resume: true, communicator: communicator)
        } else {
            guard let task else { throw ValidationError("--task is required (or --resume to continue the run in --out)") }
            let spec = try method.spec()   // before the precision's log line: a missing --method is the one message
            try precision.apply()
            var settings = options.settings(task: task, model: model.folder, method: spec,
                                            learningRate: methodOptions.lr, cacheFrozenLayers: methodOptions.cacheFrozenLayers)
            settings.initialAdapter = initialAdapter.map(absolute)
            trainer = try Trainer(settings: settings, folder: out, communicator: communicator)
        }
        if let summary = try trainer.run(), communicator.isRoot {
            let data = try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys, .prettyPrinted])
            print(String(decoding: data, as: UTF8.self))
        }
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Score an adapter on a split of a task.")

    @OptionGroup var model: ModelOptions
    @Option(help: "Task spec file (JSON).") var task: String
    @Option(help: "Adapter folder (PEFT format).") var adapter: String
    @Option(help: "Split to score: train, dev or test.") var split = "test"
    @OptionGroup var inference: InferenceOptions
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var precision: PrecisionOptions

    func run() throws {
        try precision.apply(announce: false)
        let pretrained = try PretrainedModel(folder: model.folder)
        let spec = try TaskSpec(contentsOf: task)
        let (tuned, info) = try PeftAdapter.read(adapter, weights: pretrained.weights)
        guard info.kind == spec.kind, tuned.head.labelCount == spec.labels.count else {
            throw InputError(adapter, "the adapter's head (\(info.kind.rawValue), \(tuned.head.labelCount) labels) does not fit task \(spec.name) (\(spec.kind.rawValue), \(spec.labels.count) labels)")
        }
        try tuned.checkFits(maxLength: inference.maxLength)
        let data = try SplitData(spec: spec, split: split,
                                 encoder: ExampleEncoder(tokenizer: pretrained.tokenizer, kind: spec.kind, maxLength: inference.maxLength))
        let scores = try evaluate(tuned, on: data, batchSize: inference.batchSize, paddingId: pretrained.tokenizer.paddingId,
                                  progressLabel: "eval \(spec.name)").scores
        if json {
            let object: [String: Any] = ["task": spec.name, "split": split, "examples": data.examples.count, "metrics": scores]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print("\(spec.name) \(split) (\(data.examples.count) examples)")
            for (name, value) in scores.sorted(by: { $0.key < $1.key }) { print(String(format: "  %-18@ %.4f", name, value)) }
        }
    }
}

/// Runs `body` with the MPI world under `mpirun`, or alone otherwise. Under MPI an error on
/// any rank ends every rank (MPI_Abort) with its message, rather than leaving the others
/// waiting in a collective.
func withCommunicator(_ body: (Communicator) throws -> Void) throws {
    let world: Communicator = MPICommunicator.launchedByMPI ? MPICommunicator.world() : SingleProcess()
    do {
        try body(world)
    } catch let stop as TrainingInterrupted {
        // Every rank stopped at the same step, the checkpoint is written: a clean exit, not an abort.
        if world.isRoot { FileHandle.standardError.write(Data("stopped: \(stop)\n".utf8)) }
        world.barrier()
        // mpirun is ending the job already and answers no MPI_Finalize: leave without it.
        fflush(stdout)
        _exit(stop.exitStatus)
    } catch where !MPICommunicator.launchedByMPI {
        throw error
    } catch is CollectiveError where !world.isRoot {
        world.barrier()   // rank 0 reports it and ends the job
        exit(1)
    } catch {
        world.abort("\(error)")
    }
}

/// A path made absolute against the working directory, so a run's config works from anywhere.
func absolute(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
}

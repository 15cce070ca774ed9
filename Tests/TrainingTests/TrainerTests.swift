import Foundation
import Kernels
import Model
import Tasks
import TestSupport
import Training
import Tuning
import XCTest

/// The training loop on a small sentiment task the test writes itself.
final class TrainerTests: XCTestCase {
    /// Writes a two-label task: short reviews whose label follows the adjective.
    private func makeTask() throws -> String {
        let folder = try temporaryFolder(self)
        let good = ["great", "wonderful", "excellent", "superb", "lovely", "brilliant", "delightful", "fantastic"]
        let bad = ["terrible", "awful", "dreadful", "boring", "horrible", "painful", "dull", "weak"]
        let subjects = ["the movie", "this film", "the acting", "the plot", "the ending", "the story", "our evening", "the cast"]
        func lines(_ range: Range<Int>) -> String {
            range.map { i -> String in
                let positive = i % 2 == 0
                let word = (positive ? good : bad)[(i / 2) % 8]
                let text = "\(subjects[(i / 3) % 8]) was \(word)"
                return String(decoding: try! JSONSerialization.data(withJSONObject: ["text": text, "label": positive ? "pos" : "neg"]),
                              as: UTF8.self)
            }.joined(separator: "\n") + "\n"
        }
        try lines(0..<64).write(toFile: folder + "/train.jsonl", atomically: true, encoding: .utf8)
        try lines(64..<80).write(toFile: folder + "/dev.jsonl", atomically: true, encoding: .utf8)
        try lines(80..<96).write(toFile: folder + "/test.jsonl", atomically: true, encoding: .utf8)
        try #"{"name": "tiny-sentiment", "kind": "classification", "labels": ["neg", "pos"], "format": "jsonl", "train": "train.jsonl", "dev": "dev.jsonl", "test": "test.jsonl"}"#
            .write(toFile: folder + "/task.json", atomically: true, encoding: .utf8)
        return folder + "/task.json"
    }

    private func settings(_ task: String, _ method: MethodSpec, steps: Int, lr: Float? = nil) throws -> TrainingSettings {
        var settings = TrainingSettings(taskSpec: task, modelFolder: try pretrainedModelFolder(), method: method, learningRate: lr)
        settings.maxSteps = steps
        settings.batchSize = 8
        settings.evalEvery = steps / 2
        settings.logEvery = 2
        return settings
    }

    private func metrics(_ run: String) throws -> [[String: Any]] {
        try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func testLossFallsAndTheRunFolderIsComplete() throws {
        let task = try makeTask()
        let run = try temporaryFolder(self) + "/run"
        let trainer = try Trainer(settings: try settings(task, .ptv2(length: 8, dropout: 0.1, positionOffset: nil), steps: 40, lr: 3e-2),
                                  folder: run)
        let summary = try XCTUnwrap(try trainer.run())
        let losses = try metrics(run).compactMap { $0["loss"] as? Double }
        XCTAssertEqual(losses.count, 20)
        let early = losses.prefix(4).reduce(0, +) / 4, late = losses.suffix(4).reduce(0, +) / 4
        XCTAssertLessThan(late, early * 0.8, "loss should fall: \(losses)")
        for file in ["config.json", "metrics.jsonl", "checkpoint.safetensors", "summary.json",
                     "best_adapter/adapter_config.json", "best_adapter/adapter_model.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/" + file), file)
        }
        XCTAssertNotNil((summary["test"] as? [String: Double])?["accuracy"])
        XCTAssertEqual(summary["trainable_parameters"] as? Int, 8 * 6 * 2 * 384 + 2 * 384 + 2)
    }

    func testResumedRunEndsWhereAnUninterruptedRunDoes() throws {
        let task = try makeTask()
        let folder = try temporaryFolder(self)
        let method = MethodSpec.ptv1(length: 4, encoder: .lstm(hidden: 16, layers: 1))
        let whole = try Trainer(settings: try settings(task, method, steps: 12), folder: folder + "/whole")
        try whole.run()

        do {
            let interrupted = try Trainer(settings: try settings(task, method, steps: 12), folder: folder + "/resumed")
            XCTAssertNil(try interrupted.run(stopAfter: 6))
            XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/resumed/summary.json"))
            // While a trainer holds the folder, no other may work on it.
            XCTAssertThrowsError(try Trainer(settings: try settings(task, method, steps: 12), folder: folder + "/resumed",
                                             resume: true)) { error in
                XCTAssert("\(error)".contains("another run is using this folder"), "\(error)")
            }
            withExtendedLifetime(interrupted) {}
        }
        let resumed = try Trainer(settings: try settings(task, method, steps: 12), folder: folder + "/resumed", resume: true)
        XCTAssertEqual(resumed.completedSteps, 6)
        try resumed.run()

        for (a, b) in zip(whole.model.trainable, resumed.model.trainable) {
            XCTAssertEqual(a.name, b.name)
            XCTAssertEqual(a.value.array, b.value.array, "\(a.name) differs after resuming")
        }
        let strip = { (lines: [[String: Any]]) in
            try lines.map { String(decoding: try JSONSerialization.data(withJSONObject: $0.filter { !["tokens_per_s", "step_ms", "communication_share"].contains($0.key) },
                                                                        options: [.sortedKeys]), as: UTF8.self) }
        }
        XCTAssertEqual(try strip(try metrics(folder + "/whole")), try strip(try metrics(folder + "/resumed")))
    }

    /// With dropout off in the model, keeping the frozen layers' outputs changes nothing but the
    /// work: Freeze tuning over three epochs ends with the parameters it ends with without the cache.
    /// The pretrained model in a folder of links whose config.json turns every dropout off.
    private func modelWithoutDropout() throws -> String {
        let original = try pretrainedModelFolder()
        let model = try temporaryFolder(self) + "/model-without-dropout"
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        for file in ["model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
        where FileManager.default.fileExists(atPath: original + "/" + file) {
            try FileManager.default.createSymbolicLink(atPath: model + "/" + file, withDestinationPath: original + "/" + file)
        }
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: original + "/config.json")))
                                   as? [String: Any])
        config["hidden_dropout_prob"] = 0.0
        config["attention_probs_dropout_prob"] = 0.0
        config["classifier_dropout"] = 0.0
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: model + "/config.json"))
        return model
    }

    func testCachingTheFrozenLayersTrainsAsComputingThemDoes() throws {
        let task = try makeTask()
        let folder = try temporaryFolder(self)
        let model = try modelWithoutDropout()
        var trainers: [Trainer] = []
        for cache in [false, true] {
            var settings = try settings(task, .freeze(layers: 2, modules: .ff), steps: 24, lr: 1e-3)
            settings.modelFolder = model
            settings.cacheFrozenLayers = cache
            let trainer = try Trainer(settings: settings, folder: folder + "/run-\(cache)")
            try trainer.run()
            trainers.append(trainer)
        }
        let recorded = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/run-true/config.json")))
        XCTAssertEqual((recorded as? [String: Any])?["cache_frozen_layers"] as? Bool, true)
        for (a, b) in zip(trainers[0].model.trainable, trainers[1].model.trainable) {
            XCTAssertEqual(a.name, b.name)
            let scale = a.value.array.map(abs).max() ?? 1
            for (x, y) in zip(a.value.array, b.value.array) { XCTAssertEqual(x, y, accuracy: 1e-4 * scale, a.name) }
        }
        let losses = try [false, true].map { try metrics(folder + "/run-\($0)").compactMap { $0["loss"] as? Double } }
        XCTAssertEqual(losses[0].count, 12)
        for (x, y) in zip(losses[0], losses[1]) { XCTAssertEqual(x, y, accuracy: 1e-4) }
    }

    /// Eight steps of P-tuning v2 on 16 NER tweets as one batch, from the start values in
    /// Fixtures/trajectory, lose what the Python stack's steps lose there (PyTorch + transformers +
    /// PEFT, written by `KEEP=Tests/Fixtures/trajectory STEPS=8 EXAMPLES=16 PROMPT_LENGTH=4
    /// scripts/compare_trajectory.sh PEER_PYTHON ner ptv2`): the forward and backward pass, gradient
    /// clipping (the norm is above 1 for six of the steps), AdamW and the schedule, composed as the
    /// trainer composes them. Without dropout, weight decay or warm-up nothing random is left.
    /// Takes the steps `scripts/compare_trajectory.sh` took into the fixture `name` (16 NER tweets
    /// as one batch a step, dropout off, no weight decay or warm-up) and checks each step's loss
    /// against the Python stack's. `startFrom` sets the fixture's start values in the settings.
    private func replayTrajectory(_ name: String, _ method: MethodSpec, lr: Float,
                                  startFrom: (inout TrainingSettings, String) -> Void) throws {
        let reference = fixture(name)
        var settings = TrainingSettings(taskSpec: reference + "/task.json", modelFolder: try modelWithoutDropout(),
                                        method: method, learningRate: lr)
        (settings.maxSteps, settings.batchSize, settings.evalEvery, settings.logEvery) = (8, 16, 8, 1)
        (settings.warmupRatio, settings.weightDecay, settings.maxGradNorm) = (0, 0, 1)
        startFrom(&settings, reference)
        let run = try temporaryFolder(self) + "/run"
        try Trainer(settings: settings, folder: run).run()
        let losses = try metrics(run).compactMap { $0["loss"] as? Double }
        let lines = try String(contentsOfFile: reference + "/peer.jsonl", encoding: .utf8).split(separator: "\n")
        let expected = try lines.map {
            try XCTUnwrap((JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double)
        }
        XCTAssertEqual(losses.count, 8)
        XCTAssertEqual(expected.count, 8)
        for (step, (ours, theirs)) in zip(losses, expected).enumerated() {
            XCTAssertEqual(ours, theirs, accuracy: 1e-4 * theirs, "step \(step + 1)")
        }
    }

    func testStepsLoseWhatThePythonStacksStepsLose() throws {
        try replayTrajectory("trajectory", .ptv2(length: 4, dropout: 0, positionOffset: nil), lr: 1e-2) {
            $0.initialPrompt = $1 + "/prompt.safetensors"
            $0.initialHead = $1 + "/heads.safetensors"
        }
    }

    /// LoRA from an adapter PEFT saved (random B matrices, so every LoRA gradient counts from step 1).
    func testLoRAStepsLoseWhatThePythonStacksStepsLose() throws {
        let lora = MethodSpec.lora(rank: 8, alpha: 16, dropout: 0, targets: ["query", "value"])
        try replayTrajectory("trajectory-lora", lora, lr: 5e-4) { $0.initialAdapter = $1 + "/adapter" }
    }

    func testARunStartsFromTheValuesOfTheAdapterItIsGiven() throws {
        let task = try makeTask()
        let folder = try temporaryFolder(self)
        let lora = MethodSpec.lora(rank: 2, alpha: 4, dropout: 0, targets: ["query"])
        try Trainer(settings: try settings(task, lora, steps: 4, lr: 1e-2), folder: folder + "/first").run()
        var next = try settings(task, .lora(rank: 2, alpha: 4, dropout: 0.1, targets: ["query"]), steps: 4)
        next.initialAdapter = folder + "/first/best_adapter"
        next.seed = 7   // other draws: the values must come from the adapter
        do {
            let started = try Trainer(settings: next, folder: folder + "/next")
            let pretrained = try PretrainedModel(folder: try pretrainedModelFolder())
            let (adapter, _) = try PeftAdapter.read(folder + "/first/best_adapter",
                                                    weights: pretrained.weights)
            XCTAssertEqual(started.model.trainable.map(\.name), adapter.trainable.map(\.name))
            for (ours, stored) in zip(started.model.trainable, adapter.trainable) {
                XCTAssertTrue(ours.value.holdsSameValues(as: stored.value), ours.name)
            }
            XCTAssertNil(try started.run(stopAfter: 2))
        }
        // Resuming reads its values from the checkpoint, not the adapter: it may be gone by then.
        try FileManager.default.moveItem(atPath: folder + "/first", toPath: folder + "/moved")
        let resumed = try Trainer(settings: next, folder: folder + "/next", resume: true)
        XCTAssertEqual(resumed.completedSteps, 2)
        try resumed.run()
        try FileManager.default.moveItem(atPath: folder + "/moved", toPath: folder + "/first")

        let refusals: [(MethodSpec, String)] = [
            (.ptv2(length: 4, dropout: 0, positionOffset: nil), "holds a lora adapter; this run trains ptv2"),
            (.lora(rank: 4, alpha: 4, dropout: 0, targets: ["query"]), "adapter holds shape [2, 384] for it"),
            (.lora(rank: 2, alpha: 4, dropout: 0, targets: ["query", "value"]), "holds nothing for it"),
        ]
        for (index, (method, message)) in refusals.enumerated() {
            var wrong = try settings(task, method, steps: 4)
            wrong.initialAdapter = folder + "/first/best_adapter"
            XCTAssertThrowsError(try Trainer(settings: wrong, folder: folder + "/wrong\(index)")) { error in
                XCTAssert("\(error)".contains(message) && "\(error)".contains("best_adapter"), "\(error)")
            }
        }
        next.initialHead = folder + "/heads.safetensors"
        XCTAssertThrowsError(try next.validate()) { error in
            XCTAssert("\(error)".contains("--initial-adapter"), "\(error)")
        }
    }

    func testBadDataStopsBeforeTheRunFolderIsWritten() throws {
        let task = try makeTask()
        let train = (task as NSString).deletingLastPathComponent + "/train.jsonl"
        try (String(contentsOfFile: train, encoding: .utf8) + "{\"text\": \"so so\", \"label\": \"meh\"}\n")
            .write(toFile: train, atomically: true, encoding: .utf8)
        let run = try temporaryFolder(self) + "/run"
        XCTAssertThrowsError(try Trainer(settings: try settings(task, .lora(rank: 2, alpha: 4, dropout: 0, targets: ["query"]), steps: 4),
                                         folder: run)) { error in
            XCTAssert("\(error)".contains("train.jsonl:65: label 'meh' is not in the spec's labels"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: run))
    }

    func testAnExistingRunIsNotOverwritten() throws {
        let task = try makeTask()
        let run = try temporaryFolder(self) + "/run"
        let trainer = try Trainer(settings: try settings(task, .freeze(layers: 1, modules: .ff), steps: 2), folder: run)
        try trainer.run()
        XCTAssertThrowsError(try Trainer(settings: try settings(task, .freeze(layers: 1, modules: .ff), steps: 2), folder: run)) { error in
            XCTAssert("\(error)".contains("already holds a run"), "\(error)")
        }
    }

    func testATrainFractionIsOneSeededSampleOfTheSplit() throws {
        let task = try makeTask()
        let spec = try TaskSpec(contentsOf: task)
        let pretrained = try PretrainedModel(folder: try pretrainedModelFolder())
        let train = try SplitData(spec: spec, split: "train",
                                  encoder: ExampleEncoder(tokenizer: pretrained.tokenizer, kind: spec.kind, maxLength: 32))
        let texts = { (data: SplitData) in data.examples.map(\.text) }
        let quarter = train.sample(fraction: 0.25, seed: 7)
        XCTAssertEqual(quarter.examples.count, 16)
        // The sample keeps the split's order, each encoding with its example (texts repeat: matched greedily).
        var next = train.examples.startIndex
        for (example, encoded) in zip(quarter.examples, quarter.encoded) {
            let found = try XCTUnwrap(train.examples[next...].firstIndex(of: example), "a subsequence of the split")
            XCTAssertEqual(encoded.inputIds, train.encoded[found].inputIds)
            next = found + 1
        }
        XCTAssertEqual(texts(train.sample(fraction: 0.25, seed: 7)), texts(quarter), "one seed, one sample")
        XCTAssertNotEqual(texts(train.sample(fraction: 0.25, seed: 8)), texts(quarter))
        XCTAssertEqual(train.sample(fraction: 0.001, seed: 7).examples.count, 1, "at least one example")
        XCTAssertEqual(texts(train.sample(fraction: 1, seed: 7)), texts(train))
        for bad in [0, -0.5, 1.5, .nan] {
            var settings = try settings(task, .ptv2(length: 8, dropout: 0, positionOffset: nil), steps: 4)
            settings.trainFraction = bad
            XCTAssertThrowsError(try settings.validate()) { XCTAssertTrue("\($0)".contains("--train-fraction"), "\($0)") }
        }
    }

    func testAnAdaptationStartsFromThePromptAndHeadPretrainingTrainedForItsTask() throws {
        let task = try makeTask()
        let pretrainFolder = try temporaryFolder(self) + "/pretrain"
        var pretraining = PromptPretrainer.Settings(tasks: [task], modelFolder: try pretrainedModelFolder())
        (pretraining.promptLength, pretraining.steps, pretraining.batchSize) = (4, 2, 8)
        try PromptPretrainer(settings: pretraining, folder: pretrainFolder).run()
        let heads = try SafeTensorsFile(path: pretrainFolder + "/heads.safetensors")
        XCTAssertEqual(heads.names, ["tiny-sentiment/classifier.bias", "tiny-sentiment/classifier.weight"])

        var settings = try settings(task, .ptv2(length: 4, dropout: 0, positionOffset: nil), steps: 2)
        (settings.initialPrompt, settings.initialHead) = (pretrainFolder + "/prompt.safetensors", pretrainFolder + "/heads.safetensors")
        let trainer = try Trainer(settings: settings, folder: try temporaryFolder(self) + "/run")
        let weight = trainer.model.head.classifier.weight.value
        let pretrained = Tensor(shape: weight.shape)
        try heads.readFloats("tiny-sentiment/classifier.weight", into: pretrained.data)
        XCTAssertEqual((0..<weight.count).map { weight[$0] }, (0..<weight.count).map { pretrained[$0] })
        let fresh = try Trainer(settings: try self.settings(task, .ptv2(length: 4, dropout: 0, positionOffset: nil), steps: 2),
                                folder: try temporaryFolder(self) + "/fresh")
        XCTAssertNotEqual(fresh.model.head.classifier.weight.value[0], weight[0], "the pretrained head is not the initial one")

        // A task pretraining never saw has no head there: a clear error naming the file and the task.
        let other = try String(contentsOfFile: task, encoding: .utf8).replacingOccurrences(of: "tiny-sentiment", with: "other-task")
        try other.write(toFile: task, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Trainer(settings: settings, folder: try temporaryFolder(self) + "/other")) {
            XCTAssertTrue("\($0)".contains("heads.safetensors") && "\($0)".contains("'other-task'"), "\($0)")
        }
    }

    func testBatchesAreShuffledUnlessARunFromBeforeTheSettingBucketedThem() throws {
        let lora = MethodSpec.lora(rank: 2, alpha: 4, dropout: 0, targets: ["query"])
        var settings = TrainingSettings(taskSpec: "t.json", modelFolder: "m", method: lora)
        XCTAssertEqual(settings.batching, .shuffled, "the Python stack's order is the default")
        settings.batching = .bucketed
        XCTAssertEqual(try TrainingSettings(json: settings.json, source: "config.json").batching, .bucketed)
        var older = settings.json
        older["batching"] = nil
        XCTAssertEqual(try TrainingSettings(json: older, source: "config.json").batching, .bucketed)
        older["batching"] = "sorted"
        XCTAssertThrowsError(try TrainingSettings(json: older, source: "config.json")) { error in
            XCTAssert("\(error)".contains("config.json: field 'batching' must be one of"), "\(error)")
        }
    }

    func testAdamWMatchesHandComputedSteps() {
        let parameter = Parameter("w", Kernels.Tensor(shape: [2], values: [1, -2]))
        parameter.setTrainable(true)
        let bias = Parameter("b.bias", Kernels.Tensor(shape: [1], values: [0.5]))
        bias.setTrainable(true)
        let optimizer = AdamW(parameters: [parameter, bias], weightDecay: 0.1)
        parameter.gradient!.copy(from: Kernels.Tensor(shape: [2], values: [0.5, -1]))
        bias.gradient![0] = 2
        optimizer.update(lr: 0.1)
        // First step: m̂ = g, v̂ = g², so the step is lr·sign(g) (up to ε); decay lr·wd·p only on w.
        XCTAssertEqual(parameter.value[0], 1 * (1 - 0.01) - 0.1, accuracy: 1e-6)
        XCTAssertEqual(parameter.value[1], -2 * (1 - 0.01) + 0.1, accuracy: 1e-6)
        XCTAssertEqual(bias.value[0], 0.5 - 0.1, accuracy: 1e-6)
    }

    func testClippingFactorScalesTheGradientsAdamWReads() {
        let parameters = (0..<2).map { index -> Parameter in
            let parameter = Parameter("w\(index)", Kernels.Tensor(shape: [2], values: [1, -2]))
            parameter.setTrainable(true)
            return parameter
        }
        parameters[0].gradient!.copy(from: Kernels.Tensor(shape: [2], values: [3, 0]))
        parameters[1].gradient!.copy(from: Kernels.Tensor(shape: [2], values: [0, -4]))
        let clipping = gradientClipping(parameters, maxNorm: 1)
        XCTAssertEqual(clipping.norm, 5, accuracy: 1e-6)
        XCTAssertEqual(clipping.factor, 1 / (5 + 1e-6), accuracy: 1e-7)
        XCTAssertEqual(gradientClipping(parameters, maxNorm: 10).factor, 1)
        XCTAssertEqual(gradientClipping(parameters, maxNorm: 0).factor, 1)
        // Two steps with the factor applied on reading = two steps on gradients scaled beforehand.
        let scaled = (0..<2).map { index -> Parameter in
            let parameter = Parameter("w\(index)", Kernels.Tensor(shape: [2], values: [1, -2]))
            parameter.setTrainable(true)
            for i in 0..<2 { parameter.gradient![i] = parameters[index].gradient![i] * clipping.factor }
            return parameter
        }
        let (optimizer, reference) = (AdamW(parameters: parameters), AdamW(parameters: scaled))
        for _ in 0..<2 {
            optimizer.update(lr: 0.1, gradientScale: clipping.factor)
            reference.update(lr: 0.1)
        }
        XCTAssertEqual(parameters.flatMap(\.value.array), scaled.flatMap(\.value.array))
        XCTAssertNotEqual(parameters[0].value[0], 1)
    }

    func testScheduleWarmsUpThenDecaysToZero() {
        XCTAssertEqual(linearSchedule(step: 0, total: 10, warmup: 2, peak: 1), 0.5)
        XCTAssertEqual(linearSchedule(step: 1, total: 10, warmup: 2, peak: 1), 1)
        XCTAssertEqual(linearSchedule(step: 6, total: 10, warmup: 2, peak: 1), 0.5)
        XCTAssertEqual(linearSchedule(step: 10, total: 10, warmup: 2, peak: 1), 0)
    }
}

import Foundation
import Kernels
import Model
import TestSupport
import XCTest

/// Hostile numbers, files and folders given to the `ptune` binary: each ends with one line that
/// names the problem and a non-zero exit, never a crash, and nothing written is lost or mixed up.
final class HostileInputTests: XCTestCase {
    /// Runs `ptune` and checks it refused with an exit (not a signal) and a message holding `expected`.
    private func expectRefusal(_ arguments: [String], input: String = "", _ expected: String,
                               line: UInt = #line) throws {
        let result = try runProduct("ptune", arguments, input: input)
        XCTAssertFalse(result.signaled, "crashed: \(result.standardError)", line: line)
        XCTAssertNotEqual(result.status, 0, line: line)
        XCTAssert(result.standardError.contains(expected), "'\(result.standardError)' lacks '\(expected)'", line: line)
    }

    /// A copy of the checkpoint folder (files linked) with `config.json` changed by `edit`.
    private func modelCopy(editingConfig edit: (inout [String: Any]) -> Void = { _ in }) throws -> String {
        let original = try pretrainedModelFolder()
        let folder = try temporaryFolder(self)
        for name in ["model.safetensors", "tokenizer.json"] {
            try FileManager.default.createSymbolicLink(atPath: folder + "/" + name, withDestinationPath: original + "/" + name)
        }
        var config = try XCTUnwrap(try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: original + "/config.json"))) as? [String: Any])
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: folder + "/config.json"))
        return folder
    }

    func testHostileModelFilesAreRefusedNotCrashedOn() throws {
        try expectRefusal(["encode", "--model", try modelCopy { $0["hidden_dropout_prob"] = 1.0 }], input: "x\n",
                          "field 'hidden_dropout_prob' must be in [0, 1), not 1.0")
        // A config's huge size meets the file's tensor before anything is allocated by it.
        try expectRefusal(["encode", "--model", try modelCopy { $0["vocab_size"] = 1 << 40 }], input: "x\n",
                          "tensor 'embeddings.word_embeddings.weight' has shape [30522, 384] but the config implies")

        // A vocab.txt longer than the embedding table would give ids past it.
        let longVocabulary = try modelCopy()
        try FileManager.default.removeItem(atPath: longVocabulary + "/tokenizer.json")
        let tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + (0..<40_000).map { "tok\($0)" }
        try tokens.joined(separator: "\r\n").write(toFile: longVocabulary + "/vocab.txt", atomically: true, encoding: .utf8)
        try expectRefusal(["encode", "--model", longVocabulary], input: "x\n",
                          "the tokenizer has ids up to 40003 but the model's embedding table has 30522 rows")

        // safetensors headers whose numbers overflow.
        let header = try modelCopy()
        try FileManager.default.removeItem(atPath: header + "/model.safetensors")
        var bytes = Data()
        withUnsafeBytes(of: (UInt64(1) << 63).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(Data("{}".utf8))
        try bytes.write(to: URL(fileURLWithPath: header + "/model.safetensors"))
        try expectRefusal(["encode", "--model", header], input: "x\n", "header length 9223372036854775808 exceeds")
        let json = #"{"w": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 0]}}"#
        bytes = Data()
        withUnsafeBytes(of: UInt64(json.utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(Data(json.utf8))
        try bytes.write(to: URL(fileURLWithPath: header + "/model.safetensors"))
        try expectRefusal(["encode", "--model", header], input: "x\n", "needs more bytes than the file holds")
    }

    func testHostileOptionsAreRefusedBeforeAnyWork() throws {
        let task = try moodTask(self) + "/mood.json", model = try pretrainedModelFolder()
        let out = try temporaryFolder(self) + "/run"
        let train = ["train", "--model", model, "--task", task, "--out", out, "--max-steps", "2", "--batch-size", "4"]
        try expectRefusal(train + ["--method", "ptv2", "--position-offset=-5"], "--position-offset: must be within 0...510")
        try expectRefusal(train + ["--method", "ptv2", "--prompt-length", "600"], "--prompt-length: must be within 1...510")
        try expectRefusal(train + ["--method", "ptv2", "--max-length", "512"],
                          "--max-length: 512 tokens do not fit: the model has 512 positions and the prompt takes 16")
        try expectRefusal(train + ["--method", "lora", "--lora-r", "100000"], "rank r must be at most 384")
        try expectRefusal(train + ["--method", "lora", "--warmup-ratio", "2"], "--warmup-ratio: must be in [0, 1]")
        try expectRefusal(train + ["--method", "lora", "--lr", "inf"], "--lr: must be a positive finite number, not inf")
        try expectRefusal(train + ["--method", "lora", "--weight-decay=-5"], "--weight-decay: must be a finite number")
        try expectRefusal(train + ["--method", "lora", "--max-grad-norm=-1"], "--max-grad-norm: must be a finite number")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "a refused run writes nothing")
        try expectRefusal(["pretrain", "--model", model, "--tasks", task, "--out", out, "--temperature", "0"],
                          "--temperature: must be a positive finite number, not 0.0")
        try expectRefusal(["encode", "--model", model, "--max-length", "100000"], input: "x\n",
                          "--max-length: must be at most the model's 512 positions")
        try expectRefusal(["tokenize", "--model", model, "--max-length", "0"], input: "x\n", "--max-length must be at least 2")
        try expectRefusal(["bench", "--model", model, "--method", "ptv2", "--max-length", "600", "--steps", "1"],
                          "--max-length: 600 tokens do not fit")
        // The old spelling is still understood.
        try expectRefusal(["bench", "--model", model, "--method", "ptv2", "--seq", "600", "--steps", "1"],
                          "--max-length: 600 tokens do not fit")
    }

    func testHostileAdaptersAreRefused() throws {
        let model = try pretrainedModelFolder()
        let input = try temporaryFolder(self) + "/in.jsonl"
        try "{\"text\": \"fine\"}\n".write(toFile: input, atomically: true, encoding: .utf8)
        func adapterCopy(_ edit: (String) throws -> Void) throws -> String {
            let folder = try temporaryFolder(self) + "/adapter"
            try FileManager.default.copyItem(atPath: fixture("ptv2_seqcls_adapter"), toPath: folder)
            try edit(folder)
            return folder
        }
        let huge = try adapterCopy { folder in
            let path = folder + "/adapter_config.json"
            var config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
            config["num_virtual_tokens"] = 1 << 40
            try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
        }
        try expectRefusal(["predict", "--model", model, "--adapter", huge, "--input", input],
                          "num_virtual_tokens must be within 1...510 for this model, not 1099511627776")
        // A run folder given as the adapter: the error points at its best_adapter/.
        let run = try temporaryFolder(self)
        try FileManager.default.copyItem(atPath: fixture("ptv2_seqcls_adapter"), toPath: run + "/best_adapter")
        try expectRefusal(["predict", "--model", model, "--adapter", run, "--input", input],
                          "is a training run's folder, not an adapter; its adapter is \(run)/best_adapter")
        // A classifier of rank 1, and one of NaN weights (JSON cannot carry the NaN logits).
        for (name, shape, value) in [("base_model.classifier.weight", [1152], Float(0)),
                                     ("base_model.classifier.weight", [3, 384], Float.nan)] {
            let adapter = try adapterCopy { folder in
                let path = folder + "/adapter_model.safetensors"
                let file = try SafeTensorsFile(path: path)
                let tensors = try file.names.map { key in
                    key == name ? (key, Tensor(shape: shape, values: [Float](repeating: value, count: shape.reduce(1, *))))
                        : (key, try file.tensor(key))
                }
                try writeSafeTensors(tensors, to: path)
            }
            let output = try temporaryFolder(self) + "/out.jsonl"
            try expectRefusal(["predict", "--model", model, "--adapter", adapter, "--input", input, "--output", output],
                              value.isNaN ? "computes non-finite logits" : "has shape [1152]; a classifier is (labels, hidden)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: output))
        }
    }

    func testRunFoldersAreNeverMixedUp() throws {
        let task = try moodTask(self), model = try pretrainedModelFolder()
        // --out pointing at a folder of other files: refused, the files untouched.
        let other = try temporaryFolder(self)
        try "mine".write(toFile: other + "/notes.txt", atomically: true, encoding: .utf8)
        try expectRefusal(["train", "--model", model, "--task", task + "/mood.json", "--method", "lora", "--out", other],
                          "exists and holds files that are not a PTune run")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: other), ["notes.txt"])
        // A task name is a name, never a path.
        try #"{"name": "../../x", "kind": "classification", "labels": ["down", "up"], "train": "data.jsonl"}"#
            .write(toFile: task + "/escape.json", atomically: true, encoding: .utf8)
        try expectRefusal(["train", "--model", model, "--task", task + "/escape.json", "--method", "lora",
                           "--out", other + "/run"], "field 'name' must be a plain name")
        // Two specs of one job with the same name would share a folder.
        try FileManager.default.copyItem(atPath: task + "/mood.json", toPath: task + "/mood-again.json")
        try expectRefusal(["adapt", "--model", model, "--tasks", "\(task)/mood.json,\(task)/mood-again.json",
                           "--method", "lora", "--out", other + "/job"], "task name 'mood' is also the name of")
    }

    func testADivergingRunStopsKeepingWhatItHad() throws {
        let task = try moodTask(self), model = try pretrainedModelFolder()
        let out = try temporaryFolder(self) + "/run"
        let result = try runProduct("ptune", ["train", "--model", model, "--task", task + "/mood.json", "--method", "full",
                                              "--lr", "1e30", "--warmup-ratio", "0", "--max-grad-norm", "0", "--max-steps", "8",
                                              "--batch-size", "8", "--log-every", "1", "--out", out])
        XCTAssertFalse(result.signaled, result.standardError)
        XCTAssertNotEqual(result.status, 0)
        XCTAssert(result.standardError.contains("diverged at step"), result.standardError)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/summary.json"))
        // What was written is valid JSON: no NaN in the metrics.
        for line in try TextFile.lines(atPath: out + "/metrics.jsonl") {
            XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(line.utf8)), String(line))
        }
    }

    func testADivergingPretrainingStopsWritingNothing() throws {
        let task = try moodTask(self), model = try pretrainedModelFolder()
        let out = try temporaryFolder(self) + "/pretraining"
        let result = try runProduct("ptune", ["pretrain", "--model", model, "--tasks", task + "/mood.json",
                                              "--pretrain-lr", "1e30", "--pretrain-steps", "6",
                                              "--pretrain-batch-size", "4", "--prompt-length", "2",
                                              "--out", out])
        XCTAssertFalse(result.signaled, result.standardError)
        XCTAssertNotEqual(result.status, 0)
        XCTAssert(result.standardError.contains("diverged at step"), result.standardError)
        XCTAssert(result.standardError.contains("--pretrain-lr"), result.standardError)
        // No prompt of non-numbers for an adaptation to start from, and no metrics with them.
        for name in ["prompt.safetensors", "heads.safetensors", "metrics.jsonl", "summary.json"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/" + name), name)
        }
    }
}

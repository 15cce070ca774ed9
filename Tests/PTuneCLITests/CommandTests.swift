import Foundation
import Model
import TestSupport
import XCTest

/// The `ptune` binary end to end: what it prints and how it fails.
final class CommandTests: XCTestCase {
    private func jsonLines(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func testTokenizeWritesTheReferenceIdsForPairs() throws {
        let model = try pretrainedModelFolder()
        let result = try runProduct("ptune", ["tokenize", "--model", model, "--pair"],
                                    input: "The quick brown fox jumps over the lazy dog.\tP-tuning v2 adds trainable prompts to every layer of the transformer!\n")
        XCTAssertEqual(result.status, 0, result.standardError)
        let line = try XCTUnwrap(jsonLines(result.standardOutput).first)
        XCTAssertEqual((line["input_ids"] as? [Int])?.count, 31)
        XCTAssertEqual((line["token_type_ids"] as? [Int])?.filter { $0 == 1 }.count, 19)
    }

    func testEncodeWritesThePooledOutputOfTheReferenceInOrder() throws {
        let model = try pretrainedModelFolder()
        let sentences = try String(contentsOfFile: fixture("sentences.txt"), encoding: .utf8)
            .split(separator: "\n").prefix(4).joined(separator: "\n") + "\n"
        // Batch size 3 puts the four sentences in two length-sorted batches; output must keep input order.
        let result = try runProduct("ptune", ["encode", "--model", model, "--batch-size", "3", "--report", "--precision", "fp32"], input: sentences)
        XCTAssertEqual(result.status, 0, result.standardError)
        XCTAssert(result.standardError.contains("sentences/s"), result.standardError)
        let lines = try jsonLines(result.standardOutput)
        XCTAssertEqual(lines.count, 4)
        let reference = try SafeTensorsFile(path: fixture("encoder.safetensors")).tensor("pooler_output")
        for (b, line) in lines.enumerated() {
            let pooled = try XCTUnwrap(line["pooler_output"] as? [Double])
            XCTAssertEqual(pooled.count, 384)
            XCTAssertEqual((line["cls"] as? [Double])?.count, 384)
            for c in 0..<384 { XCTAssertEqual(pooled[c], Double(reference[b * 384 + c]), accuracy: 1e-4) }
        }
    }

    func testBadModelFolderIsOneLineErrorAndNonZeroExit() throws {
        let folder = try temporaryFolder(self)
        try #"{"model_type": "t5"}"#.write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
        let result = try runProduct("ptune", ["encode", "--model", folder], input: "hello\n")
        XCTAssertNotEqual(result.status, 0)
        let message = result.standardError.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(message.split(separator: "\n").count, 1, message)
        XCTAssert(message.contains("config.json: unsupported model_type 't5'"), message)
    }
}

/// `ptune predict` on the reference's PEFT adapters.
final class PredictCommandTests: XCTestCase {
    private func sentencesFile() throws -> String {
        let path = try temporaryFolder(self) + "/in.jsonl"
        let lines = try String(contentsOfFile: fixture("sentences.txt"), encoding: .utf8).split(separator: "\n").prefix(4)
        let jsonl = try lines.map { String(decoding: try JSONSerialization.data(withJSONObject: ["text": String($0)]), as: UTF8.self) }
        try (jsonl.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testPredictReproducesEveryReferenceAdaptersLogits() throws {
        let model = try pretrainedModelFolder()
        let input = try sentencesFile()
        let tokenizer = try BertTokenizer(folder: model)
        let sentences = try String(contentsOfFile: fixture("sentences.txt"), encoding: .utf8).split(separator: "\n").prefix(4)
        for name in ["ptv2_seqcls", "prefix_mlp_seqcls", "ptv1_lstm_seqcls", "lora_seqcls", "ptv2_tokcls"] {
            let outputPath = input + ".\(name).out"
            let result = try runProduct("ptune", ["predict", "--model", model, "--adapter", fixture("\(name)_adapter"),
                                                  "--input", input, "--output", outputPath, "--precision", "fp32"])
            XCTAssertEqual(result.status, 0, result.standardError)
            let reference = try SafeTensorsFile(path: fixture("\(name).safetensors"))
            let expected = try reference.tensor("logits"), mask = try reference.int32s("attention_mask")
            let lines = try String(contentsOfFile: outputPath, encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(lines.count, 4, name)
            let T = try reference.info("input_ids").shape[1]
            for (b, line) in lines.enumerated() {
                let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                if let logits = object["logits"] as? [Double] {
                    XCTAssertNotNil(object["label"])
                    for (k, value) in logits.enumerated() { XCTAssertEqual(value, Double(expected[b * 3 + k]), accuracy: 1e-4, name) }
                } else {
                    // One row per whitespace word: the logits at the word's first piece.
                    let words = sentences[sentences.startIndex + b].split(separator: " ").map(String.init)
                    XCTAssertEqual(object["tokens"] as? [String], words)
                    let rows = try XCTUnwrap(object["token_logits"] as? [[Double]], name)
                    XCTAssertEqual((object["labels"] as? [Any])?.count, words.count)
                    XCTAssertEqual(rows.count, words.count, "one row per word")
                    var start = 1   // after [CLS]
                    for (word, row) in zip(words, rows) {
                        XCTAssertEqual(mask[b * T + start], 1)
                        for (k, value) in row.enumerated() { XCTAssertEqual(value, Double(expected[(b * T + start) * 5 + k]), accuracy: 1e-4) }
                        start += tokenizer.pieceIds(word).count
                    }
                    XCTAssertEqual(start + 1, mask[(b * T)..<((b + 1) * T)].filter { $0 == 1 }.count, "every piece and [SEP]")
                }
            }
        }
    }

    /// Standard input with `--input -`, one output line per input line (a blank one answers null),
    /// label names given for a PEFT adapter, and `--merge` refused where nothing merges.
    func testPredictReadsStandardInputKeepsLinesAndTakesLabelNames() throws {
        let model = try pretrainedModelFolder(), adapter = fixture("peft/ia3_train")
        let input = "{\"text\": \"a fine film\"}\n\n{\"text\": \"dull\"}\n"
        let named = try runProduct("ptune", ["predict", "--model", model, "--adapter", adapter, "--input", "-",
                                             "--labels", "neg,neutral,pos"], input: input)
        XCTAssertEqual(named.status, 0, named.standardError)
        let lines = named.standardOutput.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        XCTAssertEqual(lines.count, 3, named.standardOutput)
        XCTAssertEqual(lines[1], "null")
        for index in [0, 2] {
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(lines[index].utf8)) as? [String: Any])
            XCTAssert(["neg", "neutral", "pos"].contains(object["label"] as? String ?? ""), "\(object)")
        }
        let plain = try runProduct("ptune", ["predict", "--model", model, "--adapter", adapter, "--input", "-"], input: input)
        // Without names, a PEFT adapter's labels are the classifier's indices.
        XCTAssert(plain.standardOutput.hasPrefix("{\"label\":2,") || plain.standardOutput.hasPrefix("{\"label\":0,")
                  || plain.standardOutput.hasPrefix("{\"label\":1,"), plain.standardOutput)
        let wrongCount = try runProduct("ptune", ["predict", "--model", model, "--adapter", adapter, "--input", "-",
                                                  "--labels", "a,b"], input: input)
        XCTAssertNotEqual(wrongCount.status, 0)
        XCTAssert(wrongCount.standardError.contains("--labels names 2 labels but the adapter's classifier has 3"))
        let merge = try runProduct("ptune", ["predict", "--model", model, "--adapter", adapter, "--input", "-", "--merge"],
                                   input: input)
        XCTAssertNotEqual(merge.status, 0)
        XCTAssert(merge.standardError.contains("only LoRA updates merge"), merge.standardError)
        XCTAssertFalse(plain.standardError.contains("warning"), plain.standardError)
        // An adapter trained on another checkpoint still predicts, with a warning.
        let other = try temporaryFolder(self) + "/other"
        try FileManager.default.copyItem(atPath: adapter, toPath: other)
        let configPath = other + "/adapter_config.json"
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath)))
                                   as? [String: Any])
        config["base_model_name_or_path"] = "google-bert/bert-base-uncased"
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        let warned = try runProduct("ptune", ["predict", "--model", model, "--adapter", other, "--input", "-"], input: input)
        XCTAssertEqual(warned.status, 0, warned.standardError)
        XCTAssert(warned.standardError.contains("was trained on google-bert/bert-base-uncased"), warned.standardError)
    }

    func testPredictWithMergedLoRAMatchesUnmerged() throws {
        let model = try pretrainedModelFolder(), input = try sentencesFile()
        let arguments = ["predict", "--model", model, "--adapter", fixture("lora_seqcls_adapter"), "--input", input,
                         "--precision", "fp32"]
        let plain = try runProduct("ptune", arguments), merged = try runProduct("ptune", arguments + ["--merge"])
        XCTAssertEqual(plain.status, 0, plain.standardError)
        XCTAssertEqual(merged.status, 0, merged.standardError)
        let values = { (text: String) in text.split(separator: "\n").flatMap { line -> [Double] in
            ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])?["logits"] as? [Double] ?? [] } }
        let (a, b) = (values(plain.standardOutput), values(merged.standardOutput))
        XCTAssertEqual(a.count, 12)
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-4) }
    }

    func testTaggingTakesGivenWordsAndMarksTruncation() throws {
        let model = try pretrainedModelFolder()
        let folder = try temporaryFolder(self)
        let words = (0..<20).map { "word\($0)" }
        let lines = [["tokens": ["Paris", "is", "lovely"]], ["tokens": words]]
        try lines.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) }.joined(separator: "\n")
            .write(toFile: folder + "/in.jsonl", atomically: true, encoding: .utf8)
        let result = try runProduct("ptune", ["predict", "--model", model, "--adapter", fixture("ptv2_tokcls_adapter"),
                                              "--input", folder + "/in.jsonl", "--max-length", "16"])
        XCTAssertEqual(result.status, 0, result.standardError)
        let objects = try result.standardOutput.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        XCTAssertEqual(objects[0]["tokens"] as? [String], ["Paris", "is", "lovely"])
        XCTAssertEqual((objects[0]["labels"] as? [Any])?.count, 3)
        XCTAssertNil(objects[0]["truncated"])
        let kept = try XCTUnwrap(objects[1]["tokens"] as? [String])
        XCTAssert(kept.count < 20 && kept == Array(words.prefix(kept.count)), "\(kept)")
        XCTAssertEqual((objects[1]["token_logits"] as? [[Double]])?.count, kept.count)
        XCTAssertEqual(objects[1]["truncated"] as? Bool, true)

        try "{\"tokens\": \"not a list\"}\n".write(toFile: folder + "/bad.jsonl", atomically: true, encoding: .utf8)
        let bad = try runProduct("ptune", ["predict", "--model", model, "--adapter", fixture("ptv2_tokcls_adapter"),
                                           "--input", folder + "/bad.jsonl"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssert(bad.standardError.contains("bad.jsonl:1: field 'tokens' is not a list of strings"), bad.standardError)
    }

    func testBadInputLineIsNamedAndNothingIsWritten() throws {
        let model = try pretrainedModelFolder()
        let folder = try temporaryFolder(self)
        try "{\"text\": \"fine\"}\n{\"txt\": \"typo\"}\n".write(toFile: folder + "/in.jsonl", atomically: true, encoding: .utf8)
        let result = try runProduct("ptune", ["predict", "--model", model, "--adapter", fixture("ptv2_seqcls_adapter"),
                                              "--input", folder + "/in.jsonl", "--output", folder + "/out.jsonl"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssert(result.standardError.contains("in.jsonl:2: missing text field 'text'"), result.standardError)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/out.jsonl"))
        let unknown = try runProduct("ptune", ["predict", "--model", model, "--adapter", folder, "--input", folder + "/in.jsonl"])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssert(unknown.standardError.contains("adapter_config.json: no such file"), unknown.standardError)
    }
}

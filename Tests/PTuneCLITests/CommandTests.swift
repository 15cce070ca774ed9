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
        let result = try runProduct("ptune", ["encode", "--model", model, "--batch-size", "3", "--report"], input: sentences)
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

import Foundation
import Model
import Tasks
import TestSupport
import Tuning
import XCTest

/// Task specs and their data files, on files the tests write.
final class TaskDataTests: XCTestCase {
    private func write(_ files: [String: String]) throws -> String {
        let folder = try temporaryFolder(self)
        for (name, content) in files { try content.write(toFile: folder + "/" + name, atomically: true, encoding: .utf8) }
        return folder
    }

    private func spec(_ fields: String, files: [String: String]) throws -> (TaskSpec, String) {
        let folder = try write(files.merging(["task.json": "{\(fields)}"]) { $1 })
        return (try TaskSpec(contentsOf: folder + "/task.json"), folder)
    }

    private func expectError(_ expected: String, line: UInt = #line, _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), line: line) { error in
            XCTAssert(error is InputError, "\(error)", line: line)
            XCTAssert("\(error)".contains(expected), "'\(error)' does not mention '\(expected)'", line: line)
        }
    }

    private let classification = #""name": "t", "kind": "classification", "labels": ["neg", "pos"], "format": "jsonl", "train": "train.jsonl""#

    func testJSONLClassificationWithPairs() throws {
        let (spec, _) = try spec(classification + #", "text_pair_field": "b""#,
                                 files: ["train.jsonl": "{\"text\": \"a\", \"b\": \"c\", \"label\": \"pos\"}\n\n{\"text\": \"d\", \"b\": \"e\", \"label\": \"neg\"}\n"])
        XCTAssertEqual(try spec.examples("train"), [.classification("a", pair: "c", label: 1), .classification("d", pair: "e", label: 0)])
    }

    func testCSVWithQuotedCommasNewlinesAndQuotes() throws {
        let (spec, _) = try spec(#""name": "t", "kind": "classification", "labels": ["0", "1"], "format": "csv", "text_field": "sentence", "label_field": "y", "train": "train.csv""#,
                                 files: ["train.csv": "y,sentence\n1,\"hello, \"\"world\"\"\nagain\"\n0,plain\n"])
        XCTAssertEqual(try spec.examples("train"), [.classification("hello, \"world\"\nagain", label: 1), .classification("plain", label: 0)])
    }

    func testCoNLLAndJSONLTagging() throws {
        let tags = #""labels": ["O", "B-X", "I-X"]"#
        let (conll, _) = try spec(#""name": "t", "kind": "tagging", \#(tags), "format": "conll", "train": "train.conll""#,
                                  files: ["train.conll": "a\tB-X\nb\tI-X\n\nc\tO\n\n\n"])
        XCTAssertEqual(try conll.examples("train"), [.tagging(["a", "b"], tags: [1, 2]), .tagging(["c"], tags: [0])])
        let (jsonl, _) = try spec(#""name": "t", "kind": "tagging", \#(tags), "format": "jsonl", "train": "train.jsonl""#,
                                  files: ["train.jsonl": "{\"tokens\": [\"a\", \"b\"], \"tags\": [\"B-X\", \"O\"]}\n"])
        XCTAssertEqual(try jsonl.examples("train"), [.tagging(["a", "b"], tags: [1, 0])])
    }

    /// CoNLL-2003's four columns (word, POS, chunk, NER): the last by default, another by `tag_column`.
    func testCoNLLTagColumn() throws {
        let files = ["train.conll": "EU\tNNP\tB-NP\tB-X\nrejects\tVBZ\tB-VP\tO\n"]
        let last = #""name": "t", "kind": "tagging", "labels": ["O", "B-X", "NNP", "VBZ"], "format": "conll", "train": "train.conll""#
        XCTAssertEqual(try spec(last, files: files).0.examples("train"), [.tagging(["EU", "rejects"], tags: [1, 0])])
        let pos = try spec(last + #", "tag_column": 2"#, files: files).0
        XCTAssertEqual(pos.tagColumn, 2)
        XCTAssertEqual(try pos.examples("train"), [.tagging(["EU", "rejects"], tags: [2, 3])])
        expectError("train.conll:1: 4 columns, but the spec's tag_column is 5") {
            _ = try spec(last + #", "tag_column": 5"#, files: files).0.examples("train")
        }
        expectError("field 'tag_column' must be a CoNLL column number, 2 or more") {
            _ = try spec(last + #", "tag_column": 1"#, files: files)
        }
        expectError("task.json: field 'tag_column' is not an integer") {
            _ = try spec(last + #", "tag_column": "2""#, files: files)
        }
        expectError("task.json: field 'labels' is not a list") {
            _ = try spec(#""name": "t", "kind": "tagging", "labels": "O", "train": "x""#, files: [:])
        }
        let folder = try write(["list.json": "[1, 2]", "broken.json": "{\"name\": "])
        expectError("list.json: not a JSON object") { _ = try TaskSpec(contentsOf: folder + "/list.json") }
        expectError("broken.json: not valid JSON") { _ = try TaskSpec(contentsOf: folder + "/broken.json") }
        expectError("missing field 'train' (the training split's file; 'dev' and 'test' are optional)") {
            _ = try spec(#""name": "t", "kind": "tagging", "labels": ["O"], "dev": "dev.conll""#, files: [:])
        }
    }

    func testBadDataNamesFileAndLine() throws {
        let (bad, folder) = try spec(classification, files: ["train.jsonl": "{\"text\": \"ok\", \"label\": \"pos\"}\n{not json\n"])
        expectError("\(folder)/train.jsonl:2: not a JSON object") { _ = try bad.examples("train") }
        let (unknown, _) = try spec(classification, files: ["train.jsonl": "{\"text\": \"ok\", \"label\": \"meh\"}\n"])
        expectError("train.jsonl:1: label 'meh' is not in the spec's labels") { _ = try unknown.examples("train") }
        let (noText, _) = try spec(classification, files: ["train.jsonl": "{\"txt\": \"ok\", \"label\": \"pos\"}\n"])
        expectError("train.jsonl:1: missing text field 'text'") { _ = try noText.examples("train") }
        let (empty, _) = try spec(classification, files: ["train.jsonl": "\n"])
        expectError("the train split is empty") { _ = try empty.examples("train") }
        let (noTab, _) = try spec(#""name": "t", "kind": "tagging", "labels": ["O"], "format": "conll", "train": "train.conll""#,
                                  files: ["train.conll": "a\tO\nb O\n"])
        expectError("train.conll:2: expected token, tab, tag") { _ = try noTab.examples("train") }
        expectError("task.json: field 'kind' must be classification or tagging") {
            _ = try spec(#""name": "t", "kind": "regression", "labels": ["a"], "train": "x""#, files: [:])
        }
        expectError("no 'test' split") { _ = try bad.examples("test") }
    }

    func testWindowsLineEndingsReadAsUnixOnes() throws {
        let (jsonl, _) = try spec(classification, files: [
            "train.jsonl": "{\"text\": \"a\", \"label\": \"pos\"}\r\n\r\n{\"text\": \"b\", \"label\": \"neg\"}\r\n"])
        XCTAssertEqual(try jsonl.examples("train"), [.classification("a", label: 1), .classification("b", label: 0)])
        let conllSpec = #""name": "t", "kind": "tagging", "labels": ["O", "B-X"], "format": "conll", "train": "train.conll""#
        let (conll, _) = try spec(conllSpec, files: ["train.conll": "a\tB-X\r\nb\tO\r\n\r\nc\tO\r\n"])
        XCTAssertEqual(try conll.examples("train"), [.tagging(["a", "b"], tags: [1, 0]), .tagging(["c"], tags: [0])])
        // A bad tag on a CRLF line is caught on its own line, not merged into the next one.
        let (badTag, _) = try spec(conllSpec, files: ["train.conll": "a\tO\r\nb\tB-Y\r\nc\tO\r\n"])
        expectError("train.conll:2: label 'B-Y'") { _ = try badTag.examples("train") }
        let (csv, _) = try spec(#""name": "t", "kind": "classification", "labels": ["0", "1"], "format": "csv", "train": "train.csv""#,
                                files: ["train.csv": "\u{FEFF}text,label\r\nx,1\r\n\"y\r\nz\",0\r\n"])
        XCTAssertEqual(try csv.examples("train"), [.classification("x", label: 1), .classification("y\nz", label: 0)])
    }

    func testInvalidUTF8AndOpenQuotesNameTheirLine() throws {
        let (spec, folder) = try spec(classification, files: [:])
        var bytes = Data("{\"text\": \"ok\", \"label\": \"pos\"}\n{\"text\": \"".utf8)
        bytes.append(contentsOf: [0x61, 0xC3, 0x28])
        bytes.append(Data("\", \"label\": \"pos\"}\n".utf8))
        try bytes.write(to: URL(fileURLWithPath: folder + "/train.jsonl"))
        expectError("train.jsonl: line 2: invalid UTF-8 at byte offset 42 (column 12 of the line)") {
            _ = try spec.examples("train")
        }
        let (csv, _) = try self.spec(#""name": "t", "kind": "classification", "labels": ["0"], "format": "csv", "train": "train.csv""#,
                                     files: ["train.csv": "text,label\nx,0\n\"open,0\ny,0\n"])
        expectError("train.csv:3: the quoted field opened on this line never ends") { _ = try csv.examples("train") }
    }

    func testMisspeltFieldsAndDocumentSeparators() throws {
        expectError("task.json: unknown field 'text_pair_feild' (did you mean 'text_pair_field'?)") {
            _ = try spec(classification + #", "text_pair_feild": "b""#, files: [:])
        }
        let (conll, _) = try spec(#""name": "t", "kind": "tagging", "labels": ["O"], "format": "conll", "train": "train.conll""#,
                                  files: ["train.conll": "-DOCSTART-\tO\n\na\tO\n\n-DOCSTART- -X- O O\n\nb\tO\n"])
        XCTAssertEqual(try conll.examples("train"), [.tagging(["a"], tags: [0]), .tagging(["b"], tags: [0])])
    }

    func testWordTagsGoToTheFirstPieceAndTruncationDropsWholeWords() throws {
        let tokenizer = try BertTokenizer(tokenizerJSON: try pretrainedModelFolder() + "/tokenizer.json")
        let n = tokenizer.pieceIds("unbelievably").count
        XCTAssertGreaterThan(n, 1)
        // Room for [CLS], "go", the pieces of "unbelievably" and [SEP]: "far" is cut as a whole.
        let encoder = ExampleEncoder(tokenizer: tokenizer, kind: .tagging, maxLength: n + 3)
        let encoded = encoder.encode(.tagging(["go", "unbelievably", "far"], tags: [1, 2, 0]))
        XCTAssertEqual(encoded.inputIds.count, n + 3)
        XCTAssertEqual(encoded.labels, [-100, 1, 2] + [Int32](repeating: -100, count: n))
        XCTAssertEqual(encoded.wordStarts, [1, 2])
        XCTAssertTrue(encoded.truncated)
    }

    func testBatchesCoverEveryExampleOnceAndDependOnlyOnTheSeed() {
        let lengths = (0..<103).map { ($0 * 37) % 50 + 3 }
        let a = Batching.trainingBatches(lengths: lengths, batchSize: 8, seed: 1, order: .bucketed)
        XCTAssertEqual(a.flatMap { $0 }.sorted(), Array(0..<103))
        XCTAssertEqual(a, Batching.trainingBatches(lengths: lengths, batchSize: 8, seed: 1, order: .bucketed))
        XCTAssertNotEqual(a, Batching.trainingBatches(lengths: lengths, batchSize: 8, seed: 2, order: .bucketed))
        let spread = a.map { batch in batch.map { lengths[$0] }.max()! - batch.map { lengths[$0] }.min()! }
        XCTAssertLessThan(Double(spread.reduce(0, +)) / Double(spread.count), 10, "batches group similar lengths")
    }

    func testShuffledBatchesFollowOneShuffleAndMixLengths() {
        let lengths = (0..<103).map { ($0 * 37) % 50 + 3 }
        let a = Batching.trainingBatches(lengths: lengths, batchSize: 8, seed: 1, order: .shuffled)
        XCTAssertEqual(a.flatMap { $0 }.sorted(), Array(0..<103))
        XCTAssertEqual(a.map(\.count), [Int](repeating: 8, count: 12) + [7], "only the last batch is short")
        XCTAssertEqual(a, Batching.trainingBatches(lengths: lengths, batchSize: 8, seed: 1, order: .shuffled))
        XCTAssertNotEqual(a, Batching.trainingBatches(lengths: lengths, batchSize: 8, seed: 2, order: .shuffled))
        let spread = a.map { batch in batch.map { lengths[$0] }.max()! - batch.map { lengths[$0] }.min()! }
        XCTAssertGreaterThan(Double(spread.reduce(0, +)) / Double(spread.count), 20, "lengths are not grouped")
        XCTAssertEqual(Batching.trainingBatches(lengths: [], batchSize: 8, seed: 1, order: .shuffled), [])
    }
}

import Foundation
import Kernels
import Model
import TestSupport
import XCTest

/// Safetensors and checkpoint loading, on small files the tests write themselves.
final class CheckpointTests: XCTestCase {
    private let tinyConfig = BertConfig(vocabSize: 8, hiddenSize: 4, layers: 1, heads: 2, intermediateSize: 8,
                                        maxPositions: 16)

    private func writeRaw(_ header: String, data: [UInt8], to path: String) {
        var bytes = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) }
        bytes += Array(header.utf8) + data
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
    }

    private func expectError(_ expected: String, file: StaticString = #filePath, line: UInt = #line,
                             _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssert(error is InputError, "\(error) is not an InputError", file: file, line: line)
            XCTAssert("\(error)".contains(expected), "'\(error)' does not mention '\(expected)'", file: file, line: line)
        }
    }

    func testWriteThenReadRoundTripsEveryTensor() throws {
        let folder = try temporaryFolder(self)
        var random = SeededRandom(seed: 20)
        let weights = BertWeights(config: tinyConfig)
        for parameter in weights.parameters.all { parameter.value.copy(from: random.tensor(parameter.shape)) }
        try writeSafeTensors(weights.parameters.named, to: folder + "/model.safetensors")
        let file = try SafeTensorsFile(path: folder + "/model.safetensors")
        XCTAssertEqual(file.names, weights.parameters.names.sorted())
        let loaded = try BertWeights(config: tinyConfig, checkpoint: file)
        for parameter in weights.parameters.all {
            XCTAssertEqual(loaded.parameters[parameter.name]!.value.array, parameter.value.array, parameter.name)
        }
    }

    func testCheckpointsWithTheBertPrefixLoad() throws {
        let folder = try temporaryFolder(self)
        var random = SeededRandom(seed: 21)
        let weights = BertWeights(config: tinyConfig)
        for parameter in weights.parameters.all { parameter.value.copy(from: random.tensor(parameter.shape)) }
        try writeSafeTensors(weights.parameters.named.map { ("bert." + $0.name, $0.tensor) }, to: folder + "/m.safetensors")
        let loaded = try BertWeights(config: tinyConfig, checkpoint: SafeTensorsFile(path: folder + "/m.safetensors"))
        XCTAssertEqual(loaded.pooler.weight.value.array, weights.pooler.weight.value.array)
    }

    func testHalfAndBFloat16TensorsReadAsFloat32() throws {
        let path = try temporaryFolder(self) + "/half.safetensors"
        // 1.5 in F16 is 0x3E00, -2 in BF16 is 0xC000.
        writeRaw(#"{"h":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[2,4]}}"#,
                 data: [0x00, 0x3E, 0x00, 0xC0], to: path)
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(try file.tensor("h").array, [1.5])
        XCTAssertEqual(try file.tensor("b").array, [-2])
    }

    func testReadingParametersIsAllOrNothing() throws {
        let path = try temporaryFolder(self) + "/pair.safetensors"
        try writeSafeTensors([("a", Tensor(shape: [2], values: [1, 2])), ("b", Tensor(shape: [3], values: [3, 4, 5]))],
                             to: path)
        let a = Parameter("a", Tensor(shape: [2], values: [7, 7])), b = Parameter("b", Tensor(shape: [2], values: [8, 8]))
        let file = try SafeTensorsFile(path: path)
        expectError("pair.safetensors: tensor 'b' has shape [3] but the model needs [2]") { try file.read([("a", a), ("b", b)]) }
        XCTAssertEqual(a.value.array, [7, 7], "the first tensor was not read, as the second one's shape is wrong")
        let c = Parameter("b", Tensor(shape: [3]))
        try file.read([("a", a), ("b", c)])
        XCTAssertEqual(a.value.array + c.value.array, [1, 2, 3, 4, 5])
    }

    func testMissingTensorIsNamed() throws {
        let folder = try temporaryFolder(self)
        let weights = BertWeights(config: tinyConfig)
        try writeSafeTensors(weights.parameters.named.filter { $0.name != "encoder.layer.0.output.dense.bias" },
                             to: folder + "/model.safetensors")
        expectError("model.safetensors: missing tensor 'encoder.layer.0.output.dense.bias'") {
            _ = try BertWeights(config: tinyConfig, checkpoint: SafeTensorsFile(path: folder + "/model.safetensors"))
        }
    }

    func testTensorOfTheWrongShapeIsNamed() throws {
        let folder = try temporaryFolder(self)
        var config = tinyConfig
        config.intermediateSize = 6
        try writeSafeTensors(BertWeights(config: config).parameters.named, to: folder + "/model.safetensors")
        expectError("tensor 'encoder.layer.0.intermediate.dense.weight' has shape [6, 4] but the config implies [8, 4]") {
            _ = try BertWeights(config: tinyConfig, checkpoint: SafeTensorsFile(path: folder + "/model.safetensors"))
        }
    }

    func testTruncatedFilesAreReported() throws {
        let folder = try temporaryFolder(self)
        let path = folder + "/model.safetensors"
        try writeSafeTensors(BertWeights(config: tinyConfig).parameters.named, to: path)
        let whole = try Data(contentsOf: URL(fileURLWithPath: path))
        try whole.prefix(whole.count - 10).write(to: URL(fileURLWithPath: path))
        expectError("run past the data section") { _ = try SafeTensorsFile(path: path) }
        try whole.prefix(100).write(to: URL(fileURLWithPath: path))
        expectError("header length") { _ = try SafeTensorsFile(path: path) }
        try whole.prefix(5).write(to: URL(fileURLWithPath: path))
        expectError("truncated: 5 bytes") { _ = try SafeTensorsFile(path: path) }
    }

    func testHeadersThatLieAboutOffsetsAreRejected() throws {
        let path = try temporaryFolder(self) + "/lies.safetensors"
        writeRaw(#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}"#, data: .init(repeating: 0, count: 16), to: path)
        expectError("tensor 'w': data_offsets [0, 12] hold 12 bytes but shape [2, 2] of F32 needs 16") {
            _ = try SafeTensorsFile(path: path)
        }
        writeRaw(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                 data: .init(repeating: 0, count: 12), to: path)
        expectError("overlap") { _ = try SafeTensorsFile(path: path) }
        writeRaw(#"{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,1]}}"#, data: [0], to: path)
        expectError("unknown dtype 'Q4'") { _ = try SafeTensorsFile(path: path) }
        writeRaw("not json", data: [], to: path)
        expectError("header is not a JSON object") { _ = try SafeTensorsFile(path: path) }
    }

    func testModelFolderErrorsNameTheFile() throws {
        let folder = try temporaryFolder(self)
        let source = try pretrainedModelFolder()
        try FileManager.default.copyItem(atPath: source + "/config.json", toPath: folder + "/config.json")
        try FileManager.default.copyItem(atPath: source + "/vocab.txt", toPath: folder + "/vocab.txt")
        expectError("model.safetensors: cannot open") { _ = try PretrainedModel(folder: folder) }
        expectError("no such model folder") { _ = try PretrainedModel(folder: folder + "/absent") }

        let config = try String(contentsOfFile: folder + "/config.json", encoding: .utf8)
        try config.replacingOccurrences(of: "\"model_type\": \"bert\"", with: "\"model_type\": \"gpt2\"")
            .write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
        expectError("config.json: unsupported model_type 'gpt2' (supported: bert)") { _ = try PretrainedModel(folder: folder) }
        try config.replacingOccurrences(of: "\"hidden_size\": 384", with: "\"hidden_size\": 380")
            .write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
        expectError("hidden_size 380 is not a multiple of num_attention_heads 12") { _ = try PretrainedModel(folder: folder) }
    }

    /// A head's dropout is the config's `classifier_dropout`, else `hidden_dropout_prob`, as in
    /// transformers' BertForSequenceClassification and BertForTokenClassification.
    func testHeadDropoutFollowsTheConfig() throws {
        let path = try temporaryFolder(self) + "/config.json"
        func headDropout(_ extra: String) throws -> Float {
            try (#"{"model_type": "bert", "vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1, "#
                 + #""num_attention_heads": 2, "intermediate_size": 8, "hidden_dropout_prob": 0.2"# + extra + "}")
                .write(toFile: path, atomically: true, encoding: .utf8)
            return try BertConfig(contentsOf: path).headDropout
        }
        XCTAssertEqual(try headDropout(""), 0.2)
        XCTAssertEqual(try headDropout(#", "classifier_dropout": null"#), 0.2)
        XCTAssertEqual(try headDropout(#", "classifier_dropout": 0.05"#), 0.05)
        expectError("config.json: field 'classifier_dropout' must be in [0, 1), not 1.5") {
            _ = try headDropout(#", "classifier_dropout": 1.5"#)
        }
    }
}

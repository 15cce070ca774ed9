import Kernels
import Model
import TestSupport
import Tuning
import XCTest

/// Every tuning method against the reference (PyTorch + transformers + PEFT): the trainable
/// tensors set to the stored `param.*` values, logits and loss within 1e-4, every gradient
/// within 1e-3 of the tensor's largest entry (sampled entries and the norm for large ones).
final class ReferenceParityTests: XCTestCase {
    private static var pretrained: PretrainedModel?

    private func model() throws -> PretrainedModel {
        // Each case gets fresh weights: methods attach updates and unfreeze weights in place.
        try PretrainedModel(folder: try pretrainedModelFolder())
    }

    private func check(_ caseName: String, spec: MethodSpec, kind: TaskKind = .classification,
                       line: UInt = #line) throws {
        let pretrained = try model()
        let reference = try SafeTensorsFile(path: fixture("\(caseName).safetensors"))
        let labelsName = kind == .classification ? "labels" : "tag_labels"
        let logitsShape = try reference.info("logits").shape
        let components = try spec.components(weights: pretrained.weights, kind: kind, seed: 1)
        let head = TaskHead(kind: kind, labels: logitsShape.last!, hiddenSize: pretrained.config.hiddenSize,
                            dropout: 0.1, seed: 1)
        let model = TunedModel(weights: pretrained.weights, components: components, head: head)

        // Trainable tensors from the reference; the sets of trainable names must agree.
        var referenceTrainable: Set<String> = []
        for stored in reference.names {
            for kindPrefix in ["param.", "grad.", "gradnorm."] where stored.hasPrefix(kindPrefix) {
                let name = ptuneParameterName(peftName: String(stored.dropFirst(kindPrefix.count)))
                referenceTrainable.insert(name)
                if kindPrefix == "param." {
                    let parameter = try XCTUnwrap(model.parameters[name], "no parameter \(name)", line: line)
                    try reference.readFloats(stored, into: parameter.value.data)
                }
            }
        }
        XCTAssertEqual(Set(model.trainable.map(\.name)), referenceTrainable, "trainable sets differ", line: line)

        let shape = try reference.info("input_ids").shape
        let batch = TokenBatch(batch: shape[0], length: shape[1], inputIds: try reference.int32s("input_ids"),
                               tokenTypeIds: try reference.int32s("token_type_ids"),
                               attentionMask: try reference.int32s("attention_mask").map(Float.init))
        let labels = try reference.int32s(labelsName)
        let logits = model.forward(batch)
        let expectedLogits = try reference.tensor("logits")
        XCTAssertEqual(logits.count, expectedLogits.count, line: line)
        var worst: Float = 0
        for i in 0..<expectedLogits.count { worst = max(worst, abs(logits[i] - expectedLogits[i])) }
        XCTAssertLessThan(worst, 1e-4, "\(caseName) logits", line: line)
        XCTAssertEqual(model.loss(labels: labels), try reference.tensor("loss")[0], accuracy: 1e-4, line: line)

        model.parameters.zeroGradients()
        model.backward(labels: labels)
        for stored in reference.names where stored.hasPrefix("grad.") || stored.hasPrefix("gradnorm.") {
            let full = stored.hasPrefix("grad.")
            let peftName = String(stored.dropFirst(full ? 5 : 9))
            let name = ptuneParameterName(peftName: peftName)
            let gradient = try XCTUnwrap(model.parameters[name]?.gradient, "\(name) has no gradient", line: line)
            if full {
                let expected = try reference.tensor(stored)
                let scale = expected.array.map(abs).max()!
                var error: Float = 0
                for i in 0..<expected.count { error = max(error, abs(gradient[i] - expected[i])) }
                XCTAssertLessThan(error, 1e-3 * scale, "\(caseName) \(name) gradient", line: line)
            } else {
                let indices = try reference.int32s("gradsample_idx." + peftName)
                let values = try reference.tensor("gradsample_val." + peftName)
                let scale = values.array.map(abs).max()!
                for (k, index) in indices.enumerated() {
                    XCTAssertEqual(gradient[Int(index)], values[k], accuracy: 1e-3 * scale, "\(name)[\(index)]", line: line)
                }
                let norm = gradient.array.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
                XCTAssertEqual(norm, Double(try reference.tensor(stored)[0]), accuracy: 1e-3 * norm, "\(name) norm", line: line)
            }
        }
    }

    func testPTuningV2SequenceClassification() throws {
        try check("ptv2_seqcls", spec: .ptv2(length: 8, dropout: 0, positionOffset: nil))
    }

    func testPTuningV2TokenClassification() throws {
        try check("ptv2_tokcls", spec: .ptv2(length: 8, dropout: 0, positionOffset: nil), kind: .tagging)
    }

    func testPrefixTuningWithMLPReparameterization() throws {
        try check("prefix_mlp_seqcls", spec: .prefix(length: 8, hidden: 64, positionOffset: nil))
    }

    func testPTuningV1WithLSTMEncoder() throws {
        try check("ptv1_lstm_seqcls", spec: .ptv1(length: 4, encoder: .lstm(hidden: 32, layers: 2)))
    }

    func testLoRAOnEveryLinearLayer() throws {
        try check("lora_seqcls", spec: .lora(rank: 4, alpha: 8, dropout: 0, targets: ["query", "key", "value", "dense"]))
    }

    /// Made by scripts/make_peft_fixtures.py with PEFT's defaults for BERT (key, value, output.dense).
    func testIA3WithPEFTsDefaultTargets() throws {
        try check("peft/ia3_train/expected", spec: .ia3())
    }

    func testPromptTuning() throws {
        try check("peft/prompt_train/expected", spec: .prompt(length: 6))
    }

    func testFreezeTuningOfTheLastTwoFeedForwardBlocks() throws {
        try check("freeze_last2_seqcls", spec: .freeze(layers: 2, modules: .ff))
    }
}

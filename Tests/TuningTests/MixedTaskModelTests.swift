import Foundation
import Kernels
import Model
import TestSupport
import Tuning
import XCTest

/// One batch mixing tasks gives each sentence the answer its adapter gives it alone.
final class MixedTaskModelTests: XCTestCase {
    /// Deep prompts of two lengths (P-tuning v2 on both heads, prefix tuning's MLP), LoRA on
    /// attention and on dense layers, IA3, LoRA that trains base biases (its own copy of the base),
    /// P-tuning v1 and prompt tuning (input-level prompts, their own pass).
    let adapters = ["ptv2_seqcls_adapter", "ptv2_tokcls_adapter", "prefix_mlp_seqcls_adapter", "lora_seqcls_adapter",
                    "peft/lora_dense_tagging", "peft/ia3_tagging", "peft/lora_bias_all", "ptv1_lstm_seqcls_adapter",
                    "peft/prompt_text_tagging", "peft/ptune_prompt"]

    func testEachSentenceGetsWhatItsAdapterGivesItAlone() throws {
        let folder = try pretrainedModelFolder()
        let base = try PretrainedModel(folder: folder)
        // A deep prompt shorter than the fixtures' 8 rows, so the batch's prompts differ in length.
        let short = try temporaryFolder(self) + "/ptv2_p3_tagging"
        let method = MethodSpec.ptv2(length: 3, dropout: 0, positionOffset: nil)
        let untrained = try PretrainedModel(folder: folder)
        let model = TunedModel(weights: untrained.weights,
                               components: try method.components(weights: untrained.weights, kind: .tagging, seed: 3),
                               head: TaskHead(kind: .tagging, labels: 5, hiddenSize: 384, dropout: 0, seed: 4))
        try PeftAdapter.write(model, info: AdapterInfo(spec: method, kind: .tagging, labels: nil, baseModel: folder), to: short)
        // Full fine-tuning with changed base weights: it must run on its own copy, leaving the shared base alone.
        let full = try temporaryFolder(self) + "/full"
        let tuned = try PretrainedModel(folder: folder)
        let fullModel = TunedModel(weights: tuned.weights,
                                   components: try MethodSpec.full.components(weights: tuned.weights, kind: .classification, seed: 5),
                                   head: TaskHead(kind: .classification, labels: 2, hiddenSize: 384, dropout: 0, seed: 6))
        for layer in tuned.weights.layers { layer.output.weight.value.buffer.update(repeating: 0.01) }
        try PeftAdapter.write(fullModel, info: AdapterInfo(spec: .full, kind: .classification, labels: nil, baseModel: folder),
                              to: full)
        let adapters = adapters + [short, full]
        let mixed = MixedTaskModel(weights: base.weights)
        for name in adapters {
            try mixed.load(name.hasPrefix("/") ? name : fixture(name), name: name) { try PretrainedModel(folder: folder).weights }
        }
        XCTAssertEqual(mixed.members.map { $0.runsAlone != nil }, [false, false, false, false, false, false, true, true, true, true, false, true])
        let sentences = try String(contentsOfFile: fixture("sentences.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        // Every adapter several times, shuffled, so each shares its batch with the others.
        var random = SplitMix(seed: 7)
        var memberOf = (0..<(3 * adapters.count)).map { $0 % adapters.count }
        memberOf.shuffle(using: &random)
        let encodings = memberOf.indices.map { base.tokenizer.encode(sentences[$0 % sentences.count], maxLength: 64) }
        let logits = mixed.predict(encodings, members: memberOf, paddingId: base.tokenizer.paddingId)

        var alone: [Int: TunedModel] = [:]
        for (index, member) in memberOf.enumerated() {
            if alone[member] == nil {
                let name = adapters[member]
                alone[member] = try PeftAdapter.read(name.hasPrefix("/") ? name : fixture(name),
                                                     weights: try PretrainedModel(folder: folder).weights).model
            }
            let expected = alone[member]!.forward(TokenBatch(encodings: [encodings[index]]), forBackward: false).array
            XCTAssertEqual(logits[index].count, expected.count, "\(adapters[member])")
            let gap = zip(logits[index], expected).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThan(gap, 1e-4, "\(adapters[member]) on sentence \(index)")
        }
        // The shared base is left as it was: no adapter's update stays attached.
        XCTAssertTrue(base.weights.linears.allSatisfy { $0.1.lowRank == nil && $0.1.scaling == nil && $0.1.perSequence == nil })
        XCTAssertTrue(base.weights.parameters.trainable.isEmpty)
    }
}

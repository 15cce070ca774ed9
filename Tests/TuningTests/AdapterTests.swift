import Foundation
import Kernels
import Model
import TestSupport
import Tuning
import XCTest

/// Adapters in PEFT's format: PTune's own round-trip, and the layout PEFT writes.
final class AdapterTests: XCTestCase {
    private let referenceAdapters = ["ptv2_seqcls", "ptv2_tokcls", "prefix_mlp_seqcls", "ptv1_lstm_seqcls", "lora_seqcls"]

    private func pretrained() throws -> PretrainedModel { try PretrainedModel(folder: try pretrainedModelFolder()) }

    private func referenceBatch() throws -> TokenBatch {
        let reference = try SafeTensorsFile(path: fixture("encoder.safetensors"))
        let shape = try reference.info("input_ids").shape
        return TokenBatch(batch: shape[0], length: shape[1], inputIds: try reference.int32s("input_ids"),
                          tokenTypeIds: try reference.int32s("token_type_ids"),
                          attentionMask: try reference.int32s("attention_mask").map(Float.init))
    }

    private func jsonObject(_ path: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    func testReferenceAdaptersReproduceTheReferenceLogits() throws {
        let batch = try referenceBatch()
        for name in referenceAdapters {
            let (model, _) = try PeftAdapter.read(fixture("\(name)_adapter"), weights: try pretrained().weights)
            let logits = model.forward(batch)
            let expected = try SafeTensorsFile(path: fixture("\(name).safetensors")).tensor("logits")
            for i in 0..<expected.count { XCTAssertEqual(logits[i], expected[i], accuracy: 1e-4, "\(name)[\(i)]") }
        }
    }

    /// Adapters that PEFT 0.12 wrote for each option and method beyond ../shared/reference, and
    /// adapters that `ptune train` wrote (IA3, prompt tuning, LoRA with lora_only biases, the pooler
    /// saved and rsLoRA) with the logits PEFT computed loading them (scripts/make_peft_fixtures.py):
    /// PTune reads each and computes PEFT's logits.
    func testPEFTAndPTuneWrittenAdaptersGivePEFTsLogits() throws {
        let cases = ["lora_regex_rslora", "lora_layers_patterns", "lora_bias_all", "lora_bias_lora_only_pooler",
                     "lora_dense_tagging", "ia3_train", "ia3_tagging", "prompt_train", "prompt_text_tagging",
                     "ptune_ia3", "ptune_ia3_tagging", "ptune_prompt", "ptune_prompt_tagging", "ptune_lora_options",
                     "ptune_lora_regex_rslora", "ptune_lora_layers_patterns", "ptune_lora_bias_all", "ptune_lora_dense_tagging"]
        for name in cases {
            let expected = try SafeTensorsFile(path: fixture("peft/\(name)/expected.safetensors"))
            let shape = try expected.info("input_ids").shape
            let batch = TokenBatch(batch: shape[0], length: shape[1], inputIds: try expected.int32s("input_ids"),
                                   tokenTypeIds: try expected.int32s("token_type_ids"),
                                   attentionMask: try expected.int32s("attention_mask").map(Float.init))
            let (model, _) = try PeftAdapter.read(fixture("peft/\(name)"), weights: try pretrained().weights)
            let logits = model.forward(batch).array
            var reference = try expected.tensor("logits").array
            let referenceShape = try expected.info("logits").shape
            if referenceShape.count == 3, referenceShape[1] > shape[1] {
                // PEFT's tagging logits include the virtual tokens' positions, which PTune's head skips.
                let (skipped, labels) = (referenceShape[1] - shape[1], referenceShape[2])
                reference = (0..<shape[0]).flatMap { b in
                    reference[((b * referenceShape[1] + skipped) * labels)..<((b + 1) * referenceShape[1] * labels)]
                }
            }
            XCTAssertEqual(logits.count, reference.count, name)
            var worst: Float = 0
            for i in 0..<min(logits.count, reference.count) { worst = max(worst, abs(logits[i] - reference[i])) }
            XCTAssertLessThan(worst, 1e-4, "\(name) logits")
        }
    }

    /// Trains nothing: sets random values, writes, reads back into fresh weights, compares logits
    /// and the folder's layout with PEFT's for the same method.
    func testEveryMethodRoundTripsWithPEFTsLayout() throws {
        let batch = try referenceBatch()
        let cases: [(MethodSpec, TaskKind, String?)] = [
            (.ptv2(length: 8, dropout: 0.1, positionOffset: nil), .classification, "ptv2_seqcls_adapter"),
            (.ptv2(length: 8, dropout: 0, positionOffset: nil), .tagging, "ptv2_tokcls_adapter"),
            (.prefix(length: 8, hidden: 64, positionOffset: nil), .classification, "prefix_mlp_seqcls_adapter"),
            (.ptv1(length: 4, encoder: .lstm(hidden: 32, layers: 2)), .classification, "ptv1_lstm_seqcls_adapter"),
            (.ptv1(length: 4, encoder: .mlp(hidden: 32)), .classification, nil),
            (.prompt(length: 6), .classification, "peft/prompt_train"),
            (.lora(rank: 4, alpha: 8, dropout: 0, targets: ["query", "key", "value", "dense"]), .classification,
             "lora_seqcls_adapter"),
            (MethodSpec(LoRAMethod(rank: 4, alpha: 8, targets: .regex(#".*\.(query|value|intermediate\.dense)"#),
                                   rsLoRA: true)), .classification, "peft/lora_regex_rslora"),
            (MethodSpec(LoRAMethod(rank: 4, alpha: 8, targets: .list(["query", "key", "dense"]), layers: [1, 4],
                                   layersPattern: ["layer"], rankPattern: ["key": 2], alphaPattern: ["query": 32])),
             .classification, "peft/lora_layers_patterns"),
            (MethodSpec(LoRAMethod(rank: 4, alpha: 8, targets: .list(["query", "value"]), bias: .all)), .classification,
             "peft/lora_bias_all"),
            (MethodSpec(LoRAMethod(rank: 4, alpha: 8, targets: .list(["query", "value"]), modulesToSave: ["pooler"])),
             .classification, nil),
            (MethodSpec(LoRAMethod(rank: 4, alpha: 8, targets: .list(["query", "value"]), bias: .loraOnly)),
             .classification, nil),
            (MethodSpec(LoRAMethod(rank: 4, alpha: 16, targets: .list(["query", "dense"]))), .tagging,
             "peft/lora_dense_tagging"),
            (.ia3(), .classification, "peft/ia3_train"),
            (.ia3(), .tagging, "peft/ia3_tagging"),
            (.freeze(layers: 2, modules: .ff), .classification, nil),
            (.full, .classification, nil),
        ]
        let folder = try temporaryFolder(self)
        for (spec, kind, referenceName) in cases {
            let weights = try pretrained().weights
            let model = TunedModel(weights: weights, components: try spec.components(weights: weights, kind: kind, seed: 3),
                                   head: TaskHead(kind: kind, labels: kind == .classification ? 3 : 5, hiddenSize: 384,
                                                  dropout: 0.1, seed: 3))
            var random = SplitMix(seed: 4)
            for parameter in model.trainable {   // LoRA's B starts at zero; make every tensor matter
                for i in 0..<parameter.value.count { parameter.value[i] += 0.01 * random.normal() }
            }
            let expected = model.forward(batch).array
            let info = AdapterInfo(spec: spec, kind: kind, labels: (0..<(kind == .classification ? 3 : 5)).map { "L\($0)" },
                                   baseModel: "sentence-transformers/all-MiniLM-L6-v2")
            let path = folder + "/\(spec.name)-\(kind.rawValue)-\(referenceName?.split(separator: "/").last ?? "own")"
            try PeftAdapter.write(model, info: info, to: path)
            let (loaded, loadedInfo) = try PeftAdapter.read(path, weights: try pretrained().weights)
            XCTAssertEqual(loaded.forward(batch).array, expected, "\(spec.name) logits after the round trip")
            XCTAssertEqual(loadedInfo.labels, info.labels)
            XCTAssertEqual(loadedInfo.kind, kind)

            guard let referenceName else { continue }
            let reference = fixture(referenceName)
            XCTAssertEqual(Set(try jsonObject(path + "/adapter_config.json").keys),
                           Set(try jsonObject(reference + "/adapter_config.json").keys), "\(spec.name) config fields")
            for field in ["peft_type", "task_type", "num_virtual_tokens", "prefix_projection", "encoder_hidden_size",
                          "encoder_reparameterization_type", "encoder_num_layers", "r", "lora_alpha", "bias", "use_rslora",
                          "layers_to_transform", "layers_pattern", "rank_pattern", "alpha_pattern", "prompt_tuning_init"] {
                XCTAssertEqual((try jsonObject(path + "/adapter_config.json")[field]).map { "\($0)" },
                               (try jsonObject(reference + "/adapter_config.json")[field]).map { "\($0)" },
                               "\(spec.name) \(field)")
            }
            for field in ["target_modules", "feedforward_modules", "modules_to_save"] {
                let set = { (value: Any?) in (value as? [String]).map { "\($0.sorted())" } ?? value.map { "\($0)" } }
                XCTAssertEqual(set(try jsonObject(path + "/adapter_config.json")[field]),
                               set(try jsonObject(reference + "/adapter_config.json")[field]), "\(spec.name) \(field) (a set in PEFT)")
            }
            let ours = try SafeTensorsFile(path: path + "/adapter_model.safetensors")
            let theirs = try SafeTensorsFile(path: reference + "/adapter_model.safetensors")
            // With bias "all", PEFT also saves the classifier wrapper's inner biases, which its loader ignores.
            let theirNames = theirs.names.filter { !$0.contains(".modules_to_save.") && !$0.contains(".original_module.") }
            XCTAssertEqual(ours.names, theirNames, "\(spec.name) tensor names")
            for name in theirNames { XCTAssertEqual(try ours.info(name).shape, try theirs.info(name).shape, name) }
        }
    }

    /// PEFT has no position offset and starts the real tokens at P: an adapter trained with another
    /// carries the field in adapter_config.json, where PEFT's loader stops ("unexpected keyword
    /// argument 'position_offset'") instead of computing other logits; PTune reads it back.
    func testANonDefaultPositionOffsetIsWrittenWherePEFTRefusesIt() throws {
        let folder = try temporaryFolder(self)
        for (offset, written) in [(nil, false), (8, false), (0, true)] as [(Int?, Bool)] {
            let weights = try pretrained().weights
            let spec = MethodSpec.ptv2(length: 8, dropout: 0, positionOffset: offset)
            let model = TunedModel(weights: weights, components: try spec.components(weights: weights, seed: 1),
                                   head: TaskHead(kind: .classification, labels: 2, hiddenSize: 384, dropout: 0, seed: 1))
            let path = folder + "/offset-\(offset.map(String.init) ?? "none")"
            try PeftAdapter.write(model, info: AdapterInfo(spec: spec, kind: .classification, labels: nil, baseModel: ""),
                                  to: path)
            let config = try jsonObject(path + "/adapter_config.json")
            XCTAssertEqual(config["position_offset"] as? Int, written ? offset : nil, "offset \(String(describing: offset))")
            let (_, info) = try PeftAdapter.read(path, weights: try pretrained().weights)
            XCTAssertEqual(info.spec.positionsBeforeTokens, offset ?? 8)
        }
    }

    func testMergedLoRAGivesTheSameLogits() throws {
        let batch = try referenceBatch()
        let weights = try pretrained().weights
        let (model, _) = try PeftAdapter.read(fixture("lora_seqcls_adapter"), weights: weights)
        let unmerged = model.forward(batch).array
        for (_, linear) in weights.linears { linear.merge() }
        let merged = model.forward(batch).array
        for (a, b) in zip(unmerged, merged) { XCTAssertEqual(a, b, accuracy: 1e-4) }
    }

    // MARK: Bad adapters

    private func brokenCopy(of name: String, edit: (inout [String: Any]) -> Void) throws -> String {
        let folder = try temporaryFolder(self) + "/adapter"
        try FileManager.default.copyItem(atPath: fixture(name), toPath: folder)
        var config = try jsonObject(folder + "/adapter_config.json")
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: folder + "/adapter_config.json"))
        return folder
    }

    private func expectError(_ folder: String, _ expected: String, line: UInt = #line) throws {
        let weights = try pretrained().weights
        XCTAssertThrowsError(try PeftAdapter.read(folder, weights: weights), line: line) { error in
            XCTAssert(error is InputError, "\(error)", line: line)
            XCTAssert("\(error)".contains(expected), "'\(error)' does not mention '\(expected)'", line: line)
        }
    }

    func testAdaptersThatDoNotFitTheModelAreRejectedNamingTheField() throws {
        try expectError(try brokenCopy(of: "ptv2_seqcls_adapter") { $0["num_layers"] = 12 },
                        "adapter_config.json: num_layers is 12 but the model has 6 layers")
        try expectError(try brokenCopy(of: "ptv2_seqcls_adapter") { $0["token_dim"] = 768 },
                        "token_dim is 768 but the model has 384 hidden size")
        try expectError(try brokenCopy(of: "prefix_mlp_seqcls_adapter") { $0["num_attention_heads"] = 16 },
                        "num_attention_heads is 16 but the model has 12 attention heads")
        try expectError(try brokenCopy(of: "ptv2_seqcls_adapter") { $0["peft_type"] = "ADALORA" },
                        "not supported: peft_type 'ADALORA'")
        try expectError(try brokenCopy(of: "lora_seqcls_adapter") { $0["use_dora"] = true }, "not supported: use_dora = 1")
        try expectError(try brokenCopy(of: "lora_seqcls_adapter") { $0["layer_replication"] = [[0, 4], [2, 6]] },
                        "not supported: layer_replication")
        try expectError(try brokenCopy(of: "lora_seqcls_adapter") { $0["bias"] = "some" }, "not supported: bias 'some'")
        try expectError(try brokenCopy(of: "lora_seqcls_adapter") { $0["init_lora_weights"] = "pissa" },
                        "not supported: init_lora_weights = pissa")
        try expectError(try brokenCopy(of: "ptv2_seqcls_adapter") { $0["num_transformer_submodules"] = 2 },
                        "not supported: num_transformer_submodules = 2")
        // PEFT's bias "all" adapter read as if its config said "none": the biases are unaccounted for.
        try expectError(try brokenCopy(of: "peft/lora_bias_all") { $0["bias"] = "none" },
                        "not supported: tensor 'base_model.model.bert.embeddings.LayerNorm.bias' replaces the model's")
        try expectError(try brokenCopy(of: "ptv2_seqcls_adapter") { $0["task_type"] = "CAUSAL_LM" },
                        "not supported: task_type 'CAUSAL_LM'")
        try expectError(try brokenCopy(of: "ptv2_seqcls_adapter") { $0["num_virtual_tokens"] = 16 },
                        "tensor 'prompt_embeddings' has shape [8, 4608] but the model needs [16, 4608]")
        try expectError(try brokenCopy(of: "lora_seqcls_adapter") { $0["r"] = 8 }, "lora_A.weight' has shape [4, 384]")
        try expectError(try brokenCopy(of: "ptv2_seqcls_adapter") { $0.removeValue(forKey: "task_type") },
                        "missing field 'task_type'")
    }

    func testMissingTensorIsNamed() throws {
        let folder = try temporaryFolder(self) + "/adapter"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: fixture("ptv2_seqcls_adapter/adapter_config.json"),
                                         toPath: folder + "/adapter_config.json")
        let source = try SafeTensorsFile(path: fixture("ptv2_seqcls_adapter/adapter_model.safetensors"))
        try writeSafeTensors(try source.names.filter { $0 != "base_model.classifier.bias" }.map { ($0, try source.tensor($0)) },
                             to: folder + "/adapter_model.safetensors")
        try expectError(folder, "missing tensor 'base_model.classifier.bias'")
    }
}

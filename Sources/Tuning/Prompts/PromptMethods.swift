import Kernels
import Model

/// What the prompt methods share: a continuous prompt of `length` vectors, drawn as PyTorch draws
/// them, saved as PEFT's `prompt_embeddings` (the prompt the encoder consumes, after any encoder).
enum PromptAdapter {
    static func initialized(_ prompt: ContinuousPrompt, seed: UInt64) -> ContinuousPrompt {
        var random = SplitMix(seed: seed)
        prompt.initialize(using: &random)
        return prompt
    }

    /// The model's prompt as PEFT saves it, with the fields every prompt config has.
    static func content(of model: TunedModel, peftType: String, fields: [String: Any]) throws -> PeftAdapterContent {
        guard let prompt = model.components.compactMap({ $0 as? ContinuousPrompt }).first else {
            throw InputError("adapter", "the model has no prompt component to save")
        }
        prompt.computeOutput()
        var all = PeftAdapterContent.modelShapeFields(model.weights.config)
        all.merge(fields) { $1 }
        all["peft_type"] = peftType
        all["num_virtual_tokens"] = prompt.length
        return PeftAdapterContent(fields: all, tensors: [("prompt_embeddings", prompt.output.value)],
                                  classifierPrefix: "base_model.")
    }

    /// A saved prompt read back as a trained-directly prompt of its length.
    static func read(_ peft: PeftAdapterSource, placement: PromptPlacement, config: BertConfig,
                     positionOffset: Int? = nil) throws -> ContinuousPrompt {
        try peft.checkModelShape(config)
        try peft.unsupported("num_transformer_submodules", unless: 1)
        let length = try peft.config.int("num_virtual_tokens")
        let room = config.maxPositions - 2
        guard (1...max(room, 1)).contains(length) else {
            throw InputError(peft.configPath, "num_virtual_tokens must be within 1...\(room) for this model, not \(length)")
        }
        let prompt = ContinuousPrompt(placement: placement, reparameterization: .none(dropout: 0), length: length,
                                      config: config, positionOffset: positionOffset)
        try peft.read("prompt_embeddings", into: prompt.embedding)
        return prompt
    }
}

/// Deep prompts (P-tuning v2, prefix tuning): the real tokens' first position id.
enum DeepPrompt {
    static func validate(length: Int, offset: Int?, config: BertConfig) throws {
        try SettingCheck.promptLength(length, config: config)
        let room = config.maxPositions - 2
        if let offset {
            try SettingCheck.require((0...room).contains(offset), "--position-offset",
                                     "must be within 0...\(room) (the model has \(config.maxPositions) positions), not \(offset)")
        }
    }

    /// PEFT has no position offset: transformers starts the real tokens at P. An adapter trained with
    /// another offset carries the field in its config, which PEFT's loader refuses
    /// ("unexpected keyword argument 'position_offset'") rather than computing other logits.
    static func fields(length: Int, offset: Int?) -> [String: Any] {
        guard let offset, offset != length else { return [:] }
        return ["position_offset": offset]
    }

    /// The offset a saved adapter was trained with (adapter_config.json, or ptune.json of older PTune).
    static func offset(_ peft: PeftAdapterSource, config: BertConfig) throws -> Int? {
        let stored = peft.config.json["position_offset"] != nil ? peft.config : peft.extras
        guard stored.json["position_offset"] != nil else { return nil }
        let offset = try stored.int("position_offset")
        let room = config.maxPositions - 2
        guard (0...room).contains(offset) else {
            throw InputError(stored.source, "position_offset must be within 0...\(room), not \(offset)")
        }
        return offset
    }
}

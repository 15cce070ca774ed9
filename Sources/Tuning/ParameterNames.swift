/// PTune's name for a tensor that PEFT or transformers names: without `base_model.model.`,
/// `base_model.`, the `bert.` prefix, PEFT's adapter name (`.default`) and `modules_to_save`.
/// `base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.default.weight` becomes
/// `encoder.layer.0.attention.self.query.lora_A.weight`.
public func ptuneParameterName(peftName: String) -> String {
    var name = peftName
    for prefix in ["base_model.model.", "base_model.", "bert."] where name.hasPrefix(prefix) {
        name.removeFirst(prefix.count)
    }
    name = name.replacingOccurrences(of: ".modules_to_save.default.", with: ".")
    name = name.replacingOccurrences(of: ".default.", with: ".")
    if name.hasSuffix(".default") { name.removeLast(".default".count) }   // IA3's `ia3_l.default`
    return name
}

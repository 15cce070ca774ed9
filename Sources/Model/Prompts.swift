/// Continuous prompts that tuning methods add to the encoder's computation.
///
/// The encoder only knows where prompts enter; how they are produced (directly
/// trained, through an MLP or an LSTM) belongs to the tuning methods, which read the
/// gradients the backward pass leaves in these parameters.
public struct Prompts {
    /// Deep prompts (prefix tuning, P-tuning v2): (P, layers · 2 · C), PEFT's layout —
    /// columns [2i·C, (2i+1)·C) are layer i's key vectors, the next C its value vectors.
    /// They are prepended to every layer's keys and values, and attended by every token.
    public var keyValues: Parameter?
    /// Input-level virtual tokens (P-tuning v1): (P, C) embeddings placed before the
    /// word embeddings of the real tokens, with positions 0..<P and token type 0.
    public var inputEmbeddings: Parameter?
    /// First position id of the real tokens when `keyValues` are present
    /// (transformers offsets them by the prompt length, so PEFT-trained prefixes need P).
    public var positionOffset: Int

    public init(keyValues: Parameter? = nil, inputEmbeddings: Parameter? = nil, positionOffset: Int? = nil) {
        self.keyValues = keyValues
        self.inputEmbeddings = inputEmbeddings
        self.positionOffset = positionOffset ?? keyValues?.shape[0] ?? 0
    }

    /// No prompts: the plain encoder.
    public static let none = Prompts()

    var keyValueLength: Int { keyValues?.shape[0] ?? 0 }
    var inputLength: Int { inputEmbeddings?.shape[0] ?? 0 }
}

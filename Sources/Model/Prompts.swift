import Kernels

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
    /// Deep prompts that differ by sequence, instead of `keyValues`: a batch mixing tasks (serving).
    public var perSequence: SequencePrompts?

    public init(keyValues: Parameter? = nil, inputEmbeddings: Parameter? = nil, positionOffset: Int? = nil) {
        self.keyValues = keyValues
        self.inputEmbeddings = inputEmbeddings
        self.positionOffset = positionOffset ?? keyValues?.shape[0] ?? 0
    }

    /// Each sequence's own deep prompt (see `SequencePrompts`).
    public init(perSequence: SequencePrompts) {
        self.init()
        self.perSequence = perSequence
    }

    /// No prompts: the plain encoder.
    public static let none = Prompts()

    var keyValueLength: Int { keyValues?.shape[0] ?? perSequence?.values.shape[1] ?? 0 }
    var inputLength: Int { inputEmbeddings?.shape[0] ?? 0 }
}

/// Deep prompts of a batch whose sequences belong to different tasks, for prediction only:
/// each sequence attends to its own prompt's keys and values, of its own length.
public struct SequencePrompts {
    /// (B, P, layers · 2 · C), PEFT's row layout: sequence b's first `lengths[b]` rows are its
    /// prompt; the rest (shorter prompts, or none) are masked out of attention.
    public let values: Tensor
    public let lengths: [Int]
    /// First position id of each sequence's real tokens (its prompt's offset; 0 without one).
    public let positionOffsets: [Int]

    public init(values: Tensor, lengths: [Int], positionOffsets: [Int]) {
        precondition(values.shape.count == 3 && lengths.count == values.shape[0] && positionOffsets.count == lengths.count
                     && lengths.allSatisfy { (0...values.shape[1]).contains($0) },
                     "per-sequence prompts of shape \(values.shape) do not match lengths \(lengths)")
        self.values = values
        self.lengths = lengths
        self.positionOffsets = positionOffsets
    }
}

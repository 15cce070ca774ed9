/// A padded batch of encoded texts: (B, T) ids, token types and attention mask,
/// padded only to the longest text in the batch.
public struct TokenBatch: Sendable {
    public let batch: Int
    public let length: Int
    /// (B, T) token ids, padding id where the mask is 0.
    public var inputIds: [Int32]
    /// (B, T) token-type (segment) ids.
    public var tokenTypeIds: [Int32]
    /// (B, T) 1 for real tokens, 0 for padding.
    public var attentionMask: [Float]
    /// (B) a key per sequence that its dropout masks derive from (its index in the data set),
    /// so a sequence drops the same elements in whatever batch, on whatever rank, it is.
    public var sequenceKeys: [UInt64]

    /// Pads the encodings to the longest of them, or to `length` when given (every rank's share of
    /// a global batch pads to the global batch's length, so positions line up with one process).
    public init(encodings: [Encoding], paddingId: Int32 = 0, length: Int? = nil, sequenceKeys: [UInt64]? = nil) {
        precondition(!encodings.isEmpty, "a batch needs at least one encoding")
        batch = encodings.count
        let longest = encodings.map(\.inputIds.count).max()!
        precondition(length.map { $0 >= longest } ?? true, "padding length \(length!) below the longest \(longest)")
        let length = length ?? longest
        self.length = length
        self.sequenceKeys = sequenceKeys ?? (0..<UInt64(encodings.count)).map { $0 }
        inputIds = Array(repeating: paddingId, count: batch * length)
        tokenTypeIds = Array(repeating: 0, count: batch * length)
        attentionMask = Array(repeating: 0, count: batch * length)
        for (b, encoding) in encodings.enumerated() {
            for (t, id) in encoding.inputIds.enumerated() {
                inputIds[b * length + t] = id
                tokenTypeIds[b * length + t] = encoding.tokenTypeIds[t]
                attentionMask[b * length + t] = 1
            }
        }
    }

    public init(batch: Int, length: Int, inputIds: [Int32], tokenTypeIds: [Int32], attentionMask: [Float]) {
        precondition(inputIds.count == batch * length && tokenTypeIds.count == batch * length
                     && attentionMask.count == batch * length, "batch arrays must hold \(batch)×\(length) entries")
        self.batch = batch
        self.length = length
        self.inputIds = inputIds
        self.tokenTypeIds = tokenTypeIds
        self.attentionMask = attentionMask
        sequenceKeys = (0..<UInt64(batch)).map { $0 }
    }

    /// Number of real (unpadded) tokens.
    public var tokenCount: Int { Int(attentionMask.reduce(0, +)) }
}

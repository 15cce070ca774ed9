/// Embedding lookup: row i of out (count, channels) becomes, or with `accumulate`
/// gains, row ids[i] of table (vocabulary, channels).
public func embeddingForward(
    out: UnsafeMutablePointer<Float>, ids: UnsafePointer<Int32>, table: MatrixElements,
    count: Int, channels: Int, accumulate: Bool = false
) {
    for i in 0..<count {
        let row = Int(ids[i]) * channels, dst = out + i * channels
        switch table {
        case .float32(let table) where accumulate:
            for c in 0..<channels { dst[c] += table[row + c] }
        case .float32(let table):
            dst.update(from: table + row, count: channels)
        case .bfloat16(let table):
            for c in 0..<channels { dst[c] = (accumulate ? dst[c] : 0) + bfloat16Value(table[row + c]) }
        }
    }
}

/// Embedding backward: scatter-adds each row of dout into the row of dtable it was read from.
public func embeddingBackward(
    dtable: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, ids: UnsafePointer<Int32>,
    count: Int, channels: Int
) {
    for i in 0..<count {
        let dst = dtable + Int(ids[i]) * channels, src = dout + i * channels
        for c in 0..<channels { dst[c] += src[c] }
    }
}

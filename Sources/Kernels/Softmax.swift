#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Row-wise softmax in place over x (rows, columns), where columns whose
/// `mask` entry is 0 get probability exactly 0 (as an additive −∞ would give).
/// `mask` (columns, 1 or 0) is shared by every row.
/// A row with every column masked becomes all zeros rather than NaN.
public func maskedSoftmaxForward(
    _ x: UnsafeMutablePointer<Float>, mask: UnsafePointer<Float>, rows: Int, columns: Int
) {
    for r in 0..<rows {
        let row = x + r * columns
        let maxValue = maskedMaximum(row, mask: mask, count: columns)
        guard maxValue > -Float.infinity else {
            row.update(repeating: 0, count: columns)
            continue
        }
        // Branch-free so it vectorizes: masked columns are multiplied by their 0 (after clamping
        // at 0, as unmasked ones are, so a masked score far above the maximum is not ∞ · 0).
        for c in 0..<columns { row[c] = fastExp(min(row[c] - maxValue, 0)) * mask[c] }
        let inverse = 1 / sum(row, count: columns)
        for c in 0..<columns { row[c] *= inverse }
    }
}

/// Softmax backward from its output p, in place, row by row: `d` holds the gradient of the
/// probabilities on entry and that of the scores on exit, p · (d − Σ d·p).
///
/// With `dropped` (the forward's probabilities after dropout, `scale` = 1 / (1 − rate)), `d`
/// is the gradient of the dropped probabilities and goes through the dropout first: kept
/// elements (dropped ≠ 0) scale by `scale`, the rest become 0. A kept element whose
/// probability was 0 would be zeroed too, which changes nothing: its gradient is multiplied by p.
/// - Parameters: d, probs, dropped (rows, columns).
public func softmaxBackward(
    _ d: UnsafeMutablePointer<Float>, probs: UnsafePointer<Float>, rows: Int, columns: Int,
    dropped: UnsafePointer<Float>? = nil, scale: Float = 1
) {
    for r in 0..<rows {
        let p = probs + r * columns, dy = d + r * columns
        if let dropped {
            let kept = dropped + r * columns
            for c in 0..<columns { dy[c] = kept[c] != 0 ? dy[c] * scale : 0 }
        }
        let dot = dotProduct(dy, p, count: columns)
        for c in 0..<columns { dy[c] = p[c] * (dy[c] - dot) }
    }
}

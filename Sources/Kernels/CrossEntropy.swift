#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Mean cross-entropy of logits (rows, classes) against integer targets (rows),
/// skipping rows whose target is `ignoreIndex` (PyTorch's -100 by default).
/// Returns the mean loss and how many rows counted (0 rows gives loss 0).
public func crossEntropyForward(
    logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>, rows: Int, classes: Int,
    ignoreIndex: Int32 = -100
) -> (loss: Float, count: Int) {
    var total: Double = 0
    var counted = 0
    for r in 0..<rows where targets[r] != ignoreIndex {
        let target = Int(targets[r])
        precondition(target >= 0 && target < classes, "target \(target) outside 0..<\(classes)")
        let row = logits + r * classes
        let logSumExp = logSumExpOf(row, classes)
        total += Double(logSumExp - row[target])
        counted += 1
    }
    return (counted == 0 ? 0 : Float(total / Double(counted)), counted)
}

/// Cross-entropy backward: for each counted row, dlogits += (softmax(logits) - onehot(target)) · scale.
/// Pass `scale` = dloss / count for the mean loss.
public func crossEntropyBackward(
    dlogits: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>,
    targets: UnsafePointer<Int32>, rows: Int, classes: Int, scale: Float,
    ignoreIndex: Int32 = -100
) {
    for r in 0..<rows where targets[r] != ignoreIndex {
        let target = Int(targets[r])
        precondition(target >= 0 && target < classes, "target \(target) outside 0..<\(classes)")
        let row = logits + r * classes, drow = dlogits + r * classes
        let logSumExp = logSumExpOf(row, classes)
        for c in 0..<classes { drow[c] += expf(row[c] - logSumExp) * scale }
        drow[target] -= scale
    }
}

@inline(__always)
private func logSumExpOf(_ row: UnsafePointer<Float>, _ count: Int) -> Float {
    var maxValue = -Float.infinity
    for c in 0..<count { maxValue = max(maxValue, row[c]) }
    var sum: Float = 0
    for c in 0..<count { sum += expf(row[c] - maxValue) }
    return maxValue + logf(sum)
}

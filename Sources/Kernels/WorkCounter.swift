/// Counts the floating-point work of the matrix products, from their shapes (2 per
/// multiply-add), so a benchmark can report the achieved GFLOP/s of a whole step, and the
/// time spent in the products and in attention's element-wise work, to break a step down.
/// Products are counted where they are issued, before any split over threads.
public enum WorkCounter {
    /// Operations counted since the last reset.
    public nonisolated(unsafe) static var operations: Double = 0
    /// Seconds inside matrix products (bfloat16 rounding of their inputs included).
    public nonisolated(unsafe) static var productSeconds: Double = 0
    /// Seconds of those spent rounding float32 inputs to bfloat16.
    public nonisolated(unsafe) static var roundingSeconds: Double = 0
    /// Seconds in attention's softmax and dropout passes (its products count as products).
    public nonisolated(unsafe) static var attentionSeconds: Double = 0
    /// Matrix-product primitives made (one per new shape) and the seconds spent making them,
    /// since the process started: a server meeting many shapes pays this on its requests.
    public nonisolated(unsafe) static var primitivesMade = 0
    public nonisolated(unsafe) static var primitiveSeconds: Double = 0

    public static func reset() {
        operations = 0
        productSeconds = 0
        attentionSeconds = 0
        roundingSeconds = 0
    }

    @inline(__always)
    static func add(_ m: Int, _ n: Int, _ k: Int) { operations += 2 * Double(m) * Double(n) * Double(k) }

    /// Runs `body`, adding its wall time to `seconds`.
    @inline(__always)
    static func timed(_ seconds: inout Double, _ body: () -> Void) {
        let clock = ContinuousClock(), start = clock.now
        body()
        seconds += (clock.now - start).seconds
    }
}

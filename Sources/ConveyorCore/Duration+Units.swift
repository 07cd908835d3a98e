extension Duration {
    /// Whole milliseconds, rounded toward zero: what the database receives for delays, leases and timeouts.
    ///
    /// Saturates at `Int64.min` and `Int64.max` instead of trapping, so a huge duration a caller passes (a delay of
    /// `.seconds(Int64.max)`) reaches validation as a value out of range rather than crashing the process.
    public var wholeMilliseconds: Int64 {
        Self.saturating(self.components.seconds, times: 1000, plus: self.components.attoseconds / 1_000_000_000_000_000)
    }

    /// Whole nanoseconds, rounded toward zero (enough for about 292 years), saturating as ``wholeMilliseconds``.
    public var wholeNanoseconds: Int64 {
        Self.saturating(
            self.components.seconds,
            times: 1_000_000_000,
            plus: self.components.attoseconds / 1_000_000_000
        )
    }

    /// The duration in seconds, as a floating-point number.
    public var inSeconds: Double {
        Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18
    }

    /// A duration of `seconds`, or `nil` when `seconds` is not finite or beyond what a `Duration` in milliseconds
    /// holds: what command-line options and other untrusted numbers go through (`Duration.seconds(Double)` traps on
    /// infinity and NaN).
    public static func checkedSeconds(_ seconds: Double) -> Duration? {
        // 2^53 ms (about 285,000 years) keeps every millisecond exact in a Double.
        guard seconds.isFinite, abs(seconds) * 1000 < 9_007_199_254_740_992 else { return nil }
        return .milliseconds(Int64((seconds * 1000).rounded(.towardZero)))
    }

    private static func saturating(_ seconds: Int64, times factor: Int64, plus fraction: Int64) -> Int64 {
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: factor)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, sumOverflow) = scaled.addingReportingOverflow(fraction)
        if sumOverflow { return fraction < 0 ? .min : .max }
        return sum
    }
}

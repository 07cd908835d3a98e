extension Duration {
    /// Whole milliseconds, rounded toward zero: what the database receives for delays, leases and timeouts.
    public var wholeMilliseconds: Int64 {
        self.components.seconds * 1000 + self.components.attoseconds / 1_000_000_000_000_000
    }

    /// Whole nanoseconds, rounded toward zero (enough for about 292 years).
    public var wholeNanoseconds: Int64 {
        self.components.seconds * 1_000_000_000 + self.components.attoseconds / 1_000_000_000
    }

    /// The duration in seconds, as a floating-point number.
    public var inSeconds: Double {
        Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18
    }
}

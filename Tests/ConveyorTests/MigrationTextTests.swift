import Testing

@testable import ConveyorPostgres

/// Migrations are frozen: once a version has landed, the SQL it runs never changes, even when the templates that
/// build newer versions do.
@Suite struct MigrationTextTests {
    /// FNV-1a (64 bits) of each version's statements as rendered for schema `conveyor`, joined by `\n;\n`.
    /// A new version is added here when it lands; an existing line never changes.
    static let pinned: [Int: UInt64] = [
        1: 0x58a7_1440_b907_a91f,
        2: 0x6f0e_9435_af24_4dd6,
        3: 0x3bdf_6956_32ca_d1d0,
        4: 0x14d2_21d8_7c60_f796,
        5: 0x15ab_c283_d24e_5236,
        6: 0x3ee8_f6eb_42ef_ce4d,
        7: 0x6baf_5764_8bf3_fbc4,
        8: 0xb703_6394_de1e_da21,
        9: 0x8836_e711_e8ce_f8f4,
        10: 0x3573_3119_2552_2b4e,
        11: 0x303e_5be7_8ff3_c740,
        12: 0x7e44_e5c9_d769_38c0,
        13: 0x8958_13ff_0b9c_9ce9,
        14: 0xf5b4_0c78_b8d8_523d,
    ]

    static func fingerprint(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    @Test("every released migration renders exactly the SQL it ran when it was released")
    func releasedMigrationsAreFrozen() throws {
        let schema = try SchemaName("conveyor")
        let rendered = Dictionary(
            uniqueKeysWithValues: Migrations.all.map { migration in
                (
                    migration.version,
                    Self.fingerprint(
                        migration.statements.map { Migrations.render($0, schema: schema) }.joined(separator: "\n;\n")
                    )
                )
            }
        )
        for (version, hash) in rendered.sorted(by: { $0.key < $1.key }) {
            #expect(Self.pinned[version] == hash, "migration \(version) renders as \(String(hash, radix: 16))")
        }
    }
}

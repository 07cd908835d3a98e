import ConveyorCore
import Testing

@Suite struct NameValidationTests {
    @Test("labels allow letters, digits and _ - . : only")
    func labels() {
        #expect(NameValidation.checkLabel("mail.outbound:eu-1_a") == nil)
        #expect(NameValidation.checkLabel("") == .empty)
        #expect(NameValidation.checkLabel("a b") == .invalidCharacter(" "))
        #expect(NameValidation.checkLabel("x'; DROP TABLE jobs; --") == .invalidCharacter("'"))
        #expect(NameValidation.checkLabel("é") == .invalidCharacter("é"))
        #expect(NameValidation.checkLabel(String(repeating: "a", count: 129)) == .tooLong(limit: 128))
    }

    @Test("schema names are plain lower-case identifiers")
    func schemas() {
        #expect(NameValidation.checkSchema("conveyor") == nil)
        #expect(NameValidation.checkSchema("_t1") == nil)
        #expect(NameValidation.checkSchema("1abc") == .invalidStart)
        #expect(NameValidation.checkSchema("Conveyor") == .invalidStart)
        #expect(NameValidation.checkSchema("con\"veyor") == .invalidCharacter("\""))
        #expect(NameValidation.checkSchema(String(repeating: "a", count: 64)) == .tooLong(limit: 63))
    }
}

import ArgumentParser
import Testing
@testable import atso_transfer

@Test func rootCommandParses() throws {
  _ = try AtsoTransfer.parseAsRoot([])
}

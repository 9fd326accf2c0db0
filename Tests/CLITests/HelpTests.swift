import ArgumentParser
import Foundation
import Testing

@testable import atso_transfer

/// Every command of the tool, with its name path (`["mapping", "apply"]`).
private func allCommands() -> [(path: [String], type: any ParsableCommand.Type)] {
  var result: [(path: [String], type: any ParsableCommand.Type)] = []
  func visit(_ type: any ParsableCommand.Type, _ path: [String]) {
    result.append((path, type))
    for sub in type.configuration.subcommands {
      visit(sub, path + [sub.configuration.commandName ?? sub._commandName])
    }
  }
  visit(AtsoTransfer.self, [])
  return result
}

/// The example commands of a discussion: lines starting with `atso-transfer` and their
/// continuation lines (ending in a backslash), split into words as a shell would (quotes
/// removed; the words from a redirection or comment on are dropped).
private func exampleCommands(_ discussion: String) -> [[String]] {
  var commands: [[String]] = []
  var current: String?
  for line in discussion.split(separator: "\n", omittingEmptySubsequences: false) {
    let text = line.trimmingCharacters(in: .whitespaces)
    if current == nil, text.hasPrefix("atso-transfer ") { current = "" }
    guard var command = current else { continue }
    let continued = text.hasSuffix("\\")
    command += " " + (continued ? String(text.dropLast()) : text)
    current = command
    if !continued {
      commands.append(shellWords(command))
      current = nil
    }
  }
  return commands
}

private func shellWords(_ text: String) -> [String] {
  var words: [String] = []
  var word = ""
  var quote: Character?
  var inWord = false
  for character in text {
    if let q = quote {
      if character == q { quote = nil } else { word.append(character) }
    } else if character == "'" || character == "\"" {
      quote = character
      inWord = true
    } else if character == " " {
      if inWord { words.append(word) }
      word = ""
      inWord = false
    } else {
      word.append(character)
      inWord = true
    }
  }
  if inWord { words.append(word) }
  if let end = words.firstIndex(where: { $0.hasPrefix(">") || $0.hasPrefix("#") }) {
    words = Array(words[..<end])
  }
  return words
}

@Suite("help texts")
struct HelpTests {
  @Test("every command's help has an example, and no example line is rewrapped at 80 columns")
  func examples() throws {
    let commands = allCommands()
    #expect(commands.count >= 20)
    for (path, type) in commands {
      let name = (["atso-transfer"] + path).joined(separator: " ")
      let discussion = type.configuration.discussion
      let lines = discussion.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
      #expect(
        lines.contains { $0.hasPrefix("Example") }, "\(name): no 'Example:' or 'Examples:' line")
      #expect(!exampleCommands(discussion).isEmpty, "\(name): no example command")
      let help = AtsoTransfer.helpMessage(for: type, columns: 80)
      let rendered = Set(help.split(separator: "\n", omittingEmptySubsequences: false).map(String.init))
      for (i, line) in lines.enumerated() {
        if line.hasPrefix(" ") {
          // Preformatted (indented): examples, tables. Shorter than the screen, shown verbatim.
          #expect(line.count < 80, "\(name): '\(line)' is \(line.count) columns")
          let isShown = rendered.contains(line)
          #expect(isShown, "\(name): '\(line)' is not one line of the help")
        } else if line.count >= 80, i + 1 < lines.count {
          // A prose line the help rewraps must end its paragraph (join the lines with \),
          // else the wrap leaves a ragged short line.
          let next = lines[i + 1]
          #expect(next.isEmpty || next.hasPrefix(" "), "\(name): hard wrap after '\(line)'")
        }
      }
    }
  }

  @Test("every example command parses: its options and arguments exist")
  func examplesParse() throws {
    for (path, type) in allCommands() {
      for words in exampleCommands(type.configuration.discussion) {
        #expect(words.first == "atso-transfer")
        let arguments = Array(words.dropFirst())
        do {
          _ = try AtsoTransfer.parseAsRoot(arguments)
        } catch {
          let message = AtsoTransfer.message(for: error)
          let isUsageError = [
            "Unknown option", "Unexpected argument", "Missing expected argument",
            "is invalid for", "Missing value",
          ].contains { message.contains($0) }
          #expect(
            !isUsageError,
            "\((["atso-transfer"] + path).joined(separator: " ")): example \(arguments): \(message)")
        }
      }
    }
  }

  @Test("the mapping overview lists every subcommand, apply included")
  func mappingOverview() {
    let help = AtsoTransfer.helpMessage(for: MappingCommand.self, columns: 80)
    #expect(help.contains("OVERVIEW: Validate, check, show, compose and apply"))
    for sub in ["validate", "check", "show", "compose", "apply"] {
      #expect(help.contains("  \(sub) "))
    }
  }

  @Test("the root help documents shell completion")
  func completion() {
    let help = AtsoTransfer.helpMessage(columns: 80)
    #expect(help.contains("--generate-completion-script bash"))
  }
}

/// The jobs a queue runner fetched and has not started yet, first in, first out.
///
/// An array with a read index: taking a job is O(1), and the taken prefix is dropped once it is half the array,
/// so a buffer that a busy worker refills before it ever runs empty stays as large as what it holds (it kept every
/// job it had ever fetched before: 126 MB resident after 400,000 jobs).
struct FetchedBuffer<Element> {
    private var elements: [Element] = []
    private var start = 0

    /// The jobs waiting.
    var count: Int { self.elements.count - self.start }

    /// The array's length, taken entries not yet dropped included.
    var storageCount: Int { self.elements.count }

    mutating func append(contentsOf newElements: some Sequence<Element>) {
        self.elements.append(contentsOf: newElements)
    }

    mutating func takeFirst() -> Element? {
        guard self.start < self.elements.count else { return nil }
        let next = self.elements[self.start]
        self.start += 1
        if self.start == self.elements.count {
            self.elements.removeAll(keepingCapacity: true)
            self.start = 0
        } else if self.start >= 32, self.start * 2 >= self.elements.count {
            self.elements.removeFirst(self.start)
            self.start = 0
        }
        return next
    }
}

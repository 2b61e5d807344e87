using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>
/// Several data views of one schema read one after another as a single view (ML.NET's binary loader takes one
/// file only). Column types must match exactly (names, item types, vector sizes), which the constructor checks.
/// </summary>
internal sealed class ConcatenatedDataView : IDataView
{
    readonly IDataView[] parts;

    public ConcatenatedDataView(IReadOnlyList<IDataView> parts, IReadOnlyList<string> names)
    {
        if (parts.Count == 0) throw new ArgumentException("There is no part to read.", nameof(parts));
        this.parts = parts.ToArray();
        Schema = parts[0].Schema;
        for (int p = 1; p < parts.Count; p++)
        {
            var s = parts[p].Schema;
            bool same = s.Count == Schema.Count && Enumerable.Range(0, s.Count).All(i => s[i].Name == Schema[i].Name && s[i].Type.Equals(Schema[i].Type) && s[i].IsHidden == Schema[i].IsHidden);
            if (!same)
                throw new InvalidDataException(
                    $"Part '{names[p]}' has the columns ({Describe(s)}) but part '{names[0]}' has ({Describe(Schema)}); all parts must come from the same pipeline.");
        }
    }

    static string Describe(DataViewSchema s) => string.Join(", ", s.Select(c => $"{c.Name}: {c.Type}"));

    public DataViewSchema Schema { get; }
    public bool CanShuffle => false;

    public long? GetRowCount()
    {
        long total = 0;
        foreach (var p in parts)
        {
            if (p.GetRowCount() is not long n) return null;
            total += n;
        }
        return total;
    }

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
        => new Cursor(this, columnsNeeded.Select(c => c.Index).ToHashSet());

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
        => new[] { GetRowCursor(columnsNeeded, rand) };

    sealed class Cursor : DataViewRowCursor
    {
        readonly ConcatenatedDataView owner;
        readonly HashSet<int> active;
        DataViewRowCursor? inner;
        int part = -1;
        long position = -1;

        public Cursor(ConcatenatedDataView owner, HashSet<int> active)
        {
            this.owner = owner;
            this.active = active;
        }

        public override DataViewSchema Schema => owner.Schema;
        public override long Position => position;
        public override long Batch => 0;
        public override bool IsColumnActive(DataViewSchema.Column column) => active.Contains(column.Index);

        public override bool MoveNext()
        {
            while (true)
            {
                if (inner is not null && inner.MoveNext())
                {
                    position++;
                    return true;
                }
                inner?.Dispose();
                inner = null;
                if (++part >= owner.parts.Length) return false;
                var view = owner.parts[part];
                inner = view.GetRowCursor(view.Schema.Where(c => active.Contains(c.Index)));
            }
        }

        // The getter outlives the part: it asks the current part's cursor each time.
        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!active.Contains(column.Index)) throw new InvalidOperationException($"Column '{column.Name}' was not requested from this cursor.");
            int seenPart = -1;
            ValueGetter<TValue>? getter = null;
            return (ref TValue value) =>
            {
                if (inner is null) throw new InvalidOperationException("The cursor is not on a row.");
                if (seenPart != part)
                {
                    getter = inner.GetGetter<TValue>(inner.Schema[column.Index]);
                    seenPart = part;
                }
                getter!(ref value);
            };
        }

        public override ValueGetter<DataViewRowId> GetIdGetter()
            => (ref DataViewRowId id) => id = new DataViewRowId((ulong)position, 0);

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner?.Dispose();
            inner = null;
            base.Dispose(disposing);
        }
    }
}

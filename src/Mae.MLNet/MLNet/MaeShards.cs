using System.Globalization;
using System.Text.RegularExpressions;
using Mae.MLNet.Input;
using Microsoft.ML;
using Mae.MLNet.Training;
using Mae.MLNet.Runtime;

namespace Mae.MLNet;

/// <summary>
/// Featurizing a large image set on several processes, behind the catalog methods <c>mlContext.Data.Shard</c> /
/// <c>SaveShard</c> / <c>LoadShards</c>: each rank takes a contiguous block of the rows (<see cref="Shard"/>), runs the
/// fitted pipeline (e.g. <c>MaeFeaturize</c>) over it and writes its part in ML.NET's binary IDataView format
/// (<see cref="SaveShard"/>: <c>part-RRRRR-of-WWWWW.idv</c>, written atomically); then <see cref="LoadShards"/> reads
/// all parts back, in rank order — the input's row order — as one view.
/// </summary>
internal static partial class MaeShards
{
    /// <summary>Rows <c>[r·n/W, (r + 1)·n/W)</c> of <paramref name="input"/> (n rows; counted with a cursor when the view
    /// does not know it): rank <paramref name="rank"/>'s block of <paramref name="worldSize"/>.</summary>
    public static IDataView Shard(DataOperationsCatalog data, IDataView input, int rank, int worldSize)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(input);
        if (worldSize < 1) throw new ArgumentOutOfRangeException(nameof(worldSize), worldSize, $"The world size must be ≥ 1; got {worldSize}.");
        if (rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"The rank must be in 0 … {worldSize - 1}; got {rank}.");
        long n = DataViewRows.Count(input);
        long start = n * rank / worldSize, end = n * (rank + 1) / worldSize;
        if (end == start) return new EmptyDataView(input.Schema); // more ranks than rows
        var from = start == 0 ? input : data.SkipRows(input, start); // ML.NET refuses a count of 0
        return data.TakeRows(from, end - start);
    }

    /// <summary>
    /// Applies <paramref name="pipeline"/> to this rank's block of <paramref name="input"/>, keeps
    /// <paramref name="keepColumns"/> (all columns when none are given; drop the pixel column to keep parts small) and
    /// writes <c>folder/part-RANK-of-WORLD.idv</c>; returns its path after every rank has written its part (a barrier).
    /// </summary>
    public static string SaveShard(DataOperationsCatalog data, ITransformer pipeline, IDataView input, string folder, IMaeCollective collective, params string[] keepColumns)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(collective);
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        var output = pipeline.Transform(Shard(data, input, collective.Rank, collective.WorldSize));
        foreach (var name in keepColumns)
            if (output.Schema.GetColumnOrNull(name) is null)
                throw new ArgumentException($"Column '{name}' is not in the pipeline's output (it has {string.Join(", ", output.Schema.Select(c => c.Name))}).", nameof(keepColumns));
        if (keepColumns.Length > 0) output = MaeHost.Of(data).Transforms.SelectColumns(keepColumns).Fit(output).Transform(output);
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, PartName(collective.Rank, collective.WorldSize));
        AtomicFile.Write(path, stream => data.SaveAsBinary(output, stream, keepHidden: false));
        collective.Barrier();
        return path;
    }

    /// <summary>All parts in <paramref name="folder"/> as one view, in rank order; throws naming what is missing when
    /// the parts of one world size are not all there, or when parts of different world sizes are mixed.</summary>
    public static IDataView LoadShards(DataOperationsCatalog data, string folder)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"The shard folder '{folder}' does not exist.");
        var parts = Directory.GetFiles(folder, "part-*-of-*.idv")
            .Select(p => (Path: p, Match: PartPattern().Match(Path.GetFileName(p))))
            .Where(x => x.Match.Success)
            .Select(x => (x.Path, Rank: int.Parse(x.Match.Groups[1].Value, CultureInfo.InvariantCulture), World: int.Parse(x.Match.Groups[2].Value, CultureInfo.InvariantCulture)))
            .OrderBy(x => x.Rank).ToList();
        if (parts.Count == 0) throw new InvalidDataException($"The folder '{folder}' holds no part-RANK-of-WORLD.idv file.");
        var worlds = parts.Select(p => p.World).Distinct().ToList();
        if (worlds.Count > 1)
            throw new InvalidDataException($"The folder '{folder}' mixes parts of runs with {string.Join(" and ", worlds)} ranks; keep the parts of one run only.");
        int world = worlds[0];
        var missing = Enumerable.Range(0, world).Except(parts.Select(p => p.Rank)).ToList();
        if (missing.Count > 0 || parts.Count != world)
            throw new InvalidDataException($"The folder '{folder}' lacks {string.Join(", ", missing.Select(r => PartName(r, world)))} of the {world} parts (a rank failed or has not finished).");
        var views = parts.Select(p => data.LoadFromBinary(p.Path)).ToList();
        return views.Count == 1 ? views[0] : new ConcatenatedDataView(views, parts.Select(p => Path.GetFileName(p.Path)).ToList());
    }

    static string PartName(int rank, int world) => string.Create(CultureInfo.InvariantCulture, $"part-{rank:D5}-of-{world:D5}.idv");

    [GeneratedRegex(@"^part-(\d+)-of-(\d+)\.idv$")]
    private static partial Regex PartPattern();
}

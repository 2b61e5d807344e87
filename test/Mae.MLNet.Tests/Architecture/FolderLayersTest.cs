namespace Mae.MLNet.Tests.Architecture;

/// <summary>
/// The library's folders form layers: a folder may use the folders of lower layers only, never a sibling of its own
/// layer or anything above it. This keeps the house readable bottom-up (the model without training, training without
/// ML.NET) and catches the first back-edge a change adds, naming the file and the member that made it.
/// </summary>
[TestClass]
public sealed class FolderLayersTest
{
    /// <summary>Bottom to top. Each inner array is one layer; folders in one layer are independent of each other.</summary>
    internal static readonly string[][] Layers =
    [
        ["Runtime"],                      // libtorch loading, device, threads, settings scopes
        ["Model"],                        // the paper's modules, configs and presets, pixel normalisation
        ["Interop", "Visualization"],     // weight files and ONNX in and out; reconstruction pictures
        ["Input"],                        // every source of images in batches behind the epoch plan
        ["Training"],                     // the one engine: loop, optimizer, schedules, checkpoints, data parallel
        ["FineTuning"],                   // classification on the engine
        ["Evaluation"],                   // kNN and attentive probes (the attentive probe trains as fine-tuning does)
        ["Pretraining"],                  // MAE pre-training on the engine (its kNN monitor comes from Evaluation)
        ["MLNet"],                        // the ML.NET doors: estimators, transformers, trainers, model zip
    ];

    [TestMethod]
    public void EveryFolderIsInOneLayer()
    {
        var src = Path.Combine(RepoRoot(), "src", "Mae.MLNet");
        var folders = Directory.GetDirectories(src).Select(Path.GetFileName)
            .Where(d => d is not ("bin" or "obj")).Order(StringComparer.Ordinal).ToList();
        var layered = Layers.SelectMany(l => l).Order(StringComparer.Ordinal).ToList();
        CollectionAssert.AreEqual(layered, folders, "src/Mae.MLNet's folders and the layers listed here must be the same set");
        Assert.IsFalse(Directory.EnumerateFiles(src, "*.cs").Any(), "every source file lives in a folder of a layer");
    }

    [TestMethod]
    public void NoFolderUsesASiblingOrAFolderAbove()
    {
        var rank = Layers.SelectMany((layer, i) => layer.Select(f => (f, i))).ToDictionary(x => x.f, x => x.i);
        var edges = FolderGraph.Edges(Path.Combine(RepoRoot(), "src", "Mae.MLNet"), References(),
            [Path.Combine(RepoRoot(), "build", "MaeWeakenGlibcxxRequirement.cs")], ["MAE_MLNET_RUNTIME"]);

        // The graph must see the arrows that are known to exist, or an empty graph would pass.
        Assert.IsTrue(edges.Any(e => e.From == "MLNet" && e.To == "Model"), "the graph sees MLNet → Model");
        Assert.IsTrue(edges.Any(e => e.From == "Pretraining" && e.To == "Training"), "the graph sees Pretraining → Training");

        var wrong = edges.Where(e => !rank.ContainsKey(e.From) || !rank.ContainsKey(e.To) || rank[e.To] >= rank[e.From]).ToList();
        Assert.AreEqual(0, wrong.Count, "folders using a sibling or a folder above them:\n" + string.Join("\n",
            wrong.Select(e => $"{e.From} → {e.To}:\n    " + string.Join("\n    ", e.Uses.Take(8)))));
    }

    /// <summary>What the library compiles against: the framework and the packages beside the test assembly (the
    /// library's own and the test's assemblies excluded, so every library type comes from the sources).</summary>
    static IEnumerable<string> References()
    {
        var framework = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator);
        var packages = Directory.GetFiles(AppContext.BaseDirectory, "*.dll")
            .Where(f => !Path.GetFileName(f).StartsWith("Mae.", StringComparison.OrdinalIgnoreCase)
                        && !Path.GetFileName(f).StartsWith("Microsoft.CodeAnalysis", StringComparison.Ordinal));
        return framework.Concat(packages).Where(f => !Path.GetFileName(f).StartsWith("Mae.", StringComparison.OrdinalIgnoreCase))
            .GroupBy(Path.GetFileName, StringComparer.OrdinalIgnoreCase).Select(g => g.First());
    }

    internal static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Mae.MLNet.sln"))) return dir.FullName;
        throw new InvalidOperationException("Mae.MLNet.sln not found above " + AppContext.BaseDirectory);
    }
}

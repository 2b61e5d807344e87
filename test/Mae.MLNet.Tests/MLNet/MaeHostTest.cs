using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet.Tests.MLNet;

[TestClass]
public class MaeHostTest
{
    const int Size = 8, Length = Size * Size;
    static readonly MaeConfig Config = new()
    {
        ImageSize = Size, PatchSize = 4, InChannels = 1, EmbedDim = 16, Depth = 1, NumHeads = 2,
        DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2,
    };

    sealed class Item
    {
        [VectorType(Length)] public float[] Pixels { get; set; } = new float[Length];
    }

    [TestMethod]
    public void BothCatalogsCarryTheCallersEnvironment()
    {
        var a = new MLContext(0);
        var b = new MLContext(0);
        var env = MaeHost.Of(a.Transforms).Environment;
        Assert.AreSame(env, MaeHost.Of(a.MulticlassClassification.Trainers).Environment, "one MLContext, one environment");
        Assert.AreNotSame(env, MaeHost.Of(b.Transforms).Environment);
        // The transforms catalog made for a trainers catalog builds in that same environment.
        var made = MaeHost.Of(a.MulticlassClassification.Trainers).Transforms;
        Assert.AreSame(env, MaeHost.Of(made).Environment);
    }

    [TestMethod]
    public void SavingAFeaturizerBuildsItsOnnxTransformerInTheCallersContext()
    {
        // An OnnxTransformer made from ONNX bytes writes them to a file in its environment's TempFilePath: saving
        // builds one, so the file appears in the folder the caller's MLContext names, not in a context of our own.
        var ml = new MLContext(0);
        string temp = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), $"mae-host-{Guid.NewGuid():N}")).FullName;
        ml.TempFilePath = temp;
        TorchRuntime.Seed(1);
        var encoder = new MaeEncoder(Config);
        var data = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 4).Select(i => new Item { Pixels = Enumerable.Repeat(i / 4f, Length).ToArray() }));
        var model = ml.Transforms.MaeFeaturize("Features", "Pixels", encoder, batchSize: 2, device: MaeDevice.Cpu).Fit(data);
        var created = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var markerSeen = new ManualResetEventSlim();
        const string marker = "zz-test-marker";
        using var watcher = new FileSystemWatcher(temp) { EnableRaisingEvents = true, IncludeSubdirectories = true };
        watcher.Created += (_, e) =>
        {
            if (e.Name == marker) markerSeen.Set();
            else created.Enqueue(e.Name ?? "");
        };
        string path = Path.Combine(temp, "model.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            // The watcher reports events in the order they happened: once it reports a marker written after Save, it has
            // reported every file Save created (the file may already be deleted again, so listing the folder would not do).
            File.WriteAllText(Path.Combine(temp, marker), "");
            Assert.IsTrue(markerSeen.Wait(TimeSpan.FromMinutes(2)), "the watcher never reported the marker");
            // Model.Save's own files (the zip, its ml_dotnet_* staging folder) are there in any case; the ONNX model
            // file is a randomly named file beside them.
            Assert.IsTrue(created.Any(n => n != "model.zip" && !n.StartsWith("ml_dotnet_", StringComparison.Ordinal)),
                $"files created in the caller's TempFilePath: {string.Join(", ", created)}");
        }
        finally { Directory.Delete(temp, recursive: true); }
    }
}

using Google.Protobuf;
using Mae.MLNet.Interop;
using Mae.MLNet.Interop.Onnx;
using Mae.MLNet.Training;
using Microsoft.ML;
using Mae.MLNet.Model;

namespace Mae.MLNet.Tests.Interop;

/// <summary>
/// Issue 14: every hostile file of <see cref="HostileFiles"/> is refused with the library's own exception type
/// (<see cref="MaeModelFileException"/>, or <see cref="MaeTrainingCheckpointException"/> for training checkpoints), a
/// message naming the file (and the entry or key at fault), and less than 200 MB of peak memory — resident-set growth
/// and managed allocation both — where the code before the hardening took gigabytes for several of them
/// (docs/security.md has the before/after table from test/Mae.MLNet.HostileHost).
/// </summary>
[TestClass]
public class HostileFilesTest
{
    const long Bound = 200L << 20;
    static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "Fixtures", "Interop");

    static string TempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"mae-hostile-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    static TException Refused<TException>(string attackName, string fileName, params string[] fragments) where TException : Exception
    {
        if (!OperatingSystem.IsLinux()) Assert.Inconclusive("Peak memory is measured through /proc/self/clear_refs (Linux only).");
        Assert.IsTrue(PeakMemory.Supported, "peak memory is measured through /proc/self/clear_refs");
        var attack = HostileFiles.Get(attackName);
        string dir = TempDir();
        try
        {
            string path = HostileFiles.Make(attack, Fixtures, dir);
            var r = PeakMemory.Measure(() => HostileFiles.Load(attack.Load, path));
            Console.WriteLine($"{attack.Name}: {r.Error?.GetType().Name}, peak RSS +{r.PeakMiB:F1} MiB, managed {r.ManagedMiB:F1} MiB, {r.Elapsed.TotalMilliseconds:F0} ms: {r.Error?.Message}");
            Assert.IsNotNull(r.Error, $"{attack.Name} ({attack.What}) was loaded");
            Assert.IsInstanceOfType<TException>(r.Error, $"{attack.Name}: {r.Error}");
            Assert.AreEqual(typeof(TException), r.Error.GetType(), $"{attack.Name}: {r.Error}");
            StringAssert.Contains(r.Error.Message, fileName, $"{attack.Name}: the message must name the file");
            foreach (var f in fragments) StringAssert.Contains(r.Error.Message, f, attack.Name);
            Assert.IsLessThan(Bound, r.PeakRssGrowth, $"{attack.Name}: peak resident set grew by {r.PeakMiB:F0} MiB");
            Assert.IsLessThan(Bound, r.ManagedAllocated, $"{attack.Name}: {r.ManagedMiB:F0} MiB of managed memory allocated");
            return (TException)r.Error;
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    [DataRow("xdata-pkl-first", "xdata.pth", "/xdata.pkl", "not a record torch.save writes")]
    [DataRow("metadata-before-data", "metadata-before-data.pth", "/metadata/", "not a record torch.save writes")]
    [DataRow("duplicate-zip-names", "duplicate-zip-names.pth", "two entries named", "/data/")]
    [DataRow("two-top-folders", "two-top-folders.pth", "two top folders", "evil")]
    public void ParserDifferentialsAreRefused(string attack, string file, string fragment, string entry)
    {
        var e = Refused<MaeModelFileException>(attack, file, fragment, entry);
        Assert.IsNotNull(e.Entry, "the entry at fault is named");
    }

    [TestMethod]
    [DataRow("names-blocks-20000", "encoder.safetensors", "blocks.20000.norm1.weight", "MaxLayers")]
    [DataRow("sidecar-100000-layers", "encoder.json", "depth 100000", "MaxLayers")]
    [DataRow("sidecar-mlp-ratio-400000", "encoder.json", "MLP width 9600000", "MaxWidth")]
    [DataRow("hf-config-100000-layers", "config.json", "depth 100000", "MaxLayers")]
    [DataRow("hf-config-mlp-ratio-400000", "config.json", "MLP width 9600000", "MaxWidth")]
    public void UntrustedMetadataCannotSizeTheModel(string attack, string file, string fragment, string limit)
        => Refused<MaeModelFileException>(attack, file, fragment, limit);

    [TestMethod]
    [DataRow("pickle-120M-empty-tuples", "pickle-120M-empty-tuples.pth", "MaxPickleBytes")]
    [DataRow("pickle-2M-empty-tuples", "pickle-2M-empty-tuples.pth", "MaxPickleValues")]
    [DataRow("storages-3000x1MiB", "storages.pth", "zip bomb")]
    public void MemoryAmplificationIsRefusedBeforeAllocation(string attack, string file, string fragment)
        => Refused<MaeModelFileException>(attack, file, fragment);

    [TestMethod]
    [DataRow("forged-pretrain-checkpoint", "checkpoint-0001.maeckpt", "depth 100000")]
    [DataRow("forged-finetune-checkpoint", "finetune-0001.maeft", "patch_embed.proj.weight")]
    public void ForgedTrainingCheckpointsAreRefusedBeforeAModelIsBuilt(string attack, string file, string fragment)
        => Refused<MaeTrainingCheckpointException>(attack, file, fragment, "no model is built");

    [TestMethod]
    [DataRow("pickle-bad-float", "pickle-bad-float.pth", "FLOAT '1.2.3'")]
    [DataRow("pickle-bad-put", "pickle-bad-put.pth", "PUT index '12x'")]
    [DataRow("pickle-overflow-get", "pickle-overflow-get.pth", "GET index '99999999999999999999'")]
    [DataRow("names-blocks-overflow", "encoder.safetensors", "99999999999999999999")]
    [DataRow("sidecar-truncated", "encoder.json", "not valid JSON")]
    [DataRow("sidecar-missing-key", "encoder.json", "'depth' is missing")]
    [DataRow("hf-config-broken", "config.json", "not valid JSON")]
    [DataRow("hf-config-string-layers", "config.json", "'num_hidden_layers' is \"two\"")]
    public void MalformedInputsGiveTheLibrarysException(string attack, string file, string fragment)
        => Refused<MaeModelFileException>(attack, file, fragment);

    [TestMethod]
    [DataRow("zip-crc-flipped-weight", "crc.pth", "CRC-32")]
    [DataRow("safetensors-overlap", "safetensors-overlap.safetensors", "overlap")]
    [DataRow("safetensors-duplicate-name", "safetensors-duplicate-name.safetensors", "appears twice")]
    [DataRow("model-zip-edited-onnx", "model.zip", "SHA-256")]
    [DataRow("model-zip-flipped-byte", "model.zip", "TransformerChain/OnnxModel")]
    public void IntegrityFailuresAreDetected(string attack, string file, string fragment)
        => Refused<MaeModelFileException>(attack, file, fragment);

    /// <summary>What ML.NET's plain Model.Load does with the edited graph: it loads it (ONNX Runtime only checks that
    /// the bytes are a valid graph), and the features change — only our LoadVerified notices.</summary>
    [TestMethod]
    public void PlainModelLoadAcceptsAnEditedGraphThatLoadVerifiedRefuses()
    {
        string dir = TempDir();
        try
        {
            string good = Path.Combine(dir, "good.zip");
            HostileFiles.SaveTinyModelZip(good);
            CollectionAssert.AreEqual(new[] { "TransformerChain/OnnxModel" }, MaeModelZip.Verify(good).ToArray());
            string edited = HostileFiles.Make(HostileFiles.Get("model-zip-edited-onnx"), Fixtures, Path.Combine(dir, "edited"));
            var ml = new MLContext(0);
            var row = new[] { new HostileFiles.PixelRow { Pixels = Enumerable.Range(0, 768).Select(k => k % 5 / 5f).ToArray() } };
            float[] Features(ITransformer m) => ml.Data.CreateEnumerable<FeatureRow>(m.Transform(ml.Data.LoadFromEnumerable(row)), false).Single().Features;
            var before = Features(ml.Model.LoadVerified(good, out _));
            var after = Features(ml.Model.Load(edited, out _));
            Assert.IsFalse(before.SequenceEqual(after), "the edited weight changes the features");
            Assert.ThrowsExactly<MaeModelFileException>(() => ml.Model.LoadVerified(edited, out _));
        }
        finally { Directory.Delete(dir, true); }
    }

    public sealed class FeatureRow { public float[] Features { get; set; } = Array.Empty<float>(); }

    [TestMethod]
    public void ExportedOnnxCarriesAValidDigestThatAnyEditBreaks()
    {
        using var encoder = new Mae.MLNet.Model.MaeEncoder(HostileFiles.ConfigI);
        var stream = new MemoryStream();
        MaeOnnxExport.Export(encoder, stream);
        var bytes = stream.ToArray();
        Assert.AreEqual(OnnxDigest.Status.Valid, OnnxDigest.Check(bytes));
        bytes[bytes.Length / 2] ^= 0x01;
        Assert.AreNotEqual(OnnxDigest.Status.Valid, OnnxDigest.Check(bytes));
        Assert.AreEqual(OnnxDigest.Status.Missing, OnnxDigest.Check(MaeOnnxExport.BuildModel(encoder).ToByteArray()));
    }

    [TestMethod]
    public void LimitsCanBeTightenedAndRaised()
    {
        string pth = Path.Combine(Fixtures, "official_encoder_only.pth");
        var e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.LoadEncoder(pth, HostileFiles.ConfigI, limits: new MaeLoadLimits { MaxTensorBytes = 1000 }));
        StringAssert.Contains(e.Message, "MaxTensorBytes");
        StringAssert.Contains(e.Message, pth);
        // The 3 000-storage archive is refused by the compression budget; with a larger ratio it gets to the tensors.
        string dir = TempDir();
        try
        {
            string path = HostileFiles.Make(HostileFiles.Get("storages-3000x1MiB"), Fixtures, dir);
            var raised = new MaeLoadLimits { MaxCompressionRatio = 2000 };
            e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.Read(path, HostileFiles.ConfigI, limits: raised with { MaxTensorBytes = 100L << 20 }));
            StringAssert.Contains(e.Message, "MaxTensorBytes");
        }
        finally { Directory.Delete(dir, true); }
    }
}

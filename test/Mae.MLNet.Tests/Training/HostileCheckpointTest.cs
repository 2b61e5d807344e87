using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Mae.MLNet.FineTuning;
using Mae.MLNet.Model;
using Mae.MLNet.Pretraining;
using Mae.MLNet.Tests.Interop;
using Mae.MLNet.Training;

namespace Mae.MLNet.Tests.Training;

/// <summary>
/// Issue 23, training checkpoints: every header field that sizes the model <c>LoadModel</c> builds is checked against
/// the weights the file holds before anything is built, whatever the header leaves out or adds; every failure is a
/// <see cref="MaeTrainingCheckpointException"/> naming the file, within 200 MB. Files are made with
/// <see cref="HostileFiles.WriteCheckpoint"/> (a valid container and checksum around the given header and weights).
/// </summary>
[TestClass]
public class HostileCheckpointTest
{
    const long Bound = 200L << 20;

    static MaeTrainingCheckpointException Refused(string path, Action load, params string[] fragments)
    {
        if (!PeakMemory.Supported) Assert.Inconclusive("Peak memory is measured through /proc/self/clear_refs (Linux only).");
        var r = PeakMemory.Measure(load);
        Console.WriteLine($"{Path.GetFileName(path)} ({new FileInfo(path).Length} bytes): {r.Error?.GetType().Name}, peak RSS +{r.PeakMiB:F1} MiB, managed {r.ManagedMiB:F1} MiB: {r.Error?.Message}");
        Assert.IsNotNull(r.Error, "the file was loaded");
        Assert.AreEqual(typeof(MaeTrainingCheckpointException), r.Error.GetType(), r.Error.ToString());
        StringAssert.Contains(r.Error.Message, path);
        foreach (var f in fragments) StringAssert.Contains(r.Error.Message, f);
        Assert.IsLessThan(Bound, r.PeakRssGrowth, $"peak resident set grew by {r.PeakMiB:F0} MiB");
        Assert.IsLessThan(Bound, r.ManagedAllocated, $"{r.ManagedMiB:F0} MiB allocated");
        return (MaeTrainingCheckpointException)r.Error;
    }

    /// <summary>A header without a Config (about 100 bytes in all): the reader used to build the default MaeConfig —
    /// ViT-L/16 with its decoder, about 1.3 GB — before finding that no weights fit it.</summary>
    [TestMethod]
    public void HeaderWithoutConfigSizesNothing()
    {
        using var dir = new TempDir();
        string pre = HostileFiles.WriteCheckpoint(dir.File("checkpoint-0001.maeckpt"), "MAECKPT1", """{"FormatVersion":2,"EpochsCompleted":1}""", null);
        Refused(pre, () => MaePretrainCheckpoint.LoadModel(pre).Dispose(), "no model Config");
        string ft = HostileFiles.WriteCheckpoint(dir.File("finetune-0001.maeft"), "MAEFTCK1", """{"FormatVersion":2,"NumClasses":1000}""", null);
        Refused(ft, () => MaeFineTuneCheckpoint.LoadModel(ft).Dispose(), "no model Config");
    }

    /// <summary>A pre-training file whose header adds "NumClasses" beside a config with a 4 096-wide, 48-block decoder,
    /// and holds a classifier's weights: the check used to take the header's word that it described a classifier
    /// (and skip the decoder), while the reader built the MAE with that decoder (about 39 GB). The file's kind now
    /// decides: the decoder is checked, and refused. A fine-tuning file without NumClasses is refused by name.</summary>
    [TestMethod]
    public void TheFilesKindNotItsHeaderDecidesWhatIsChecked()
    {
        using var dir = new TempDir();
        var config = HostileFiles.ConfigI with { DecoderEmbedDim = 4096, DecoderDepth = 48, DecoderNumHeads = 16 };
        using (var classifier = new VitClassifier(HostileFiles.ConfigI, 3))
        {
            var header = JsonNode.Parse(JsonSerializer.Serialize(new MaePretrainCheckpointHeader { Config = config, EpochsCompleted = 1 }))!.AsObject();
            header["NumClasses"] = 3;
            string path = HostileFiles.WriteCheckpoint(dir.File("checkpoint-0001.maeckpt"), "MAECKPT1", header.ToJsonString(), classifier);
            Refused(path, () => MaePretrainCheckpoint.LoadModel(path).Dispose(), "decoder_embed.weight");
        }
        using (var classifier = new VitClassifier(HostileFiles.ConfigI, 3))
        {
            var header = JsonNode.Parse(JsonSerializer.Serialize(new MaeFineTuneCheckpointHeader { Config = HostileFiles.ConfigI, NumClasses = 3, EpochsCompleted = 1 }))!.AsObject();
            header.Remove("NumClasses");
            string path = HostileFiles.WriteCheckpoint(dir.File("finetune-0001.maeft"), "MAEFTCK1", header.ToJsonString(), classifier);
            Refused(path, () => MaeFineTuneCheckpoint.LoadModel(path).Dispose(), "NumClasses is missing");
        }
    }

    /// <summary>A ConvNeXt V2 fine-tuning file whose header claims ConvNeXt V2-Huge (or 1 000 classes) over a tiny
    /// ConvNeXt's weights: refused from the weights' shapes before the header's model (660 M parameters) is built.</summary>
    [TestMethod]
    public void ConvNextClassifierHeaderMustDescribeItsWeights()
    {
        using var dir = new TempDir();
        var tiny = new ConvNextV2Config { ImageSize = 32, InChannels = 1, Depths = new[] { 1, 1, 1, 1 }, Dims = new[] { 8, 8, 8, 8 } };
        using var classifier = new ConvNextV2(tiny, 3);
        foreach (var (name, config, classes, fragment) in new[]
        {
            ("huge", ConvNextV2Config.Huge, 3, "depths [3, 3, 27, 3]"),
            ("classes", tiny, 1000, "1000 classes"),
        })
        {
            var header = new MaeFineTuneCheckpointHeader { Config = tiny.InputGeometry, ConvNextConfig = config, NumClasses = classes, EpochsCompleted = 1 };
            string path = HostileFiles.WriteCheckpoint(dir.File($"finetune-{name}.maeft"), "MAEFTCK1", JsonSerializer.Serialize(header), classifier);
            Refused(path, () => MaeFineTuneCheckpoint.LoadConvNextV2(path).Dispose(), "is not the one whose weights it holds", fragment);
        }
    }

    /// <summary>A header that names Config twice (the check and the reader could each take another copy): refused.</summary>
    [TestMethod]
    public void DuplicateHeaderPropertiesAreRefused()
    {
        using var dir = new TempDir();
        using var model = new MaskedAutoencoder(HostileFiles.ConfigI);
        string config = JsonSerializer.Serialize(HostileFiles.ConfigI);
        string path = HostileFiles.WriteCheckpoint(dir.File("checkpoint-0001.maeckpt"), "MAECKPT1",
            $$"""{"FormatVersion":2,"Config":{{config}},"Config":{{config}}}""", model);
        Refused(path, () => MaePretrainCheckpoint.LoadModel(path).Dispose(), "Config");
    }

    /// <summary>Issue 27, item 6: a truncated checkpoint was reported with the "payload length" its last bytes happened
    /// to hold ("payload should be 361288785190147389 bytes"). Every number the message quotes must now be a size this
    /// file can have (at most its length); the same for bytes appended after the trailer.</summary>
    [TestMethod]
    public void TruncatedOrAppendedCheckpointQuotesNoImpossibleSize()
    {
        using var dir = new TempDir();
        using var model = new MaskedAutoencoder(HostileFiles.ConfigI);
        string path = HostileFiles.WriteCheckpoint(dir.File("checkpoint-0001.maeckpt"), "MAECKPT1",
            JsonSerializer.Serialize(new MaePretrainCheckpointHeader { Config = HostileFiles.ConfigI, EpochsCompleted = 1 }), model);
        var whole = File.ReadAllBytes(path);
        foreach (var (what, bytes) in new[] { ("truncated", whole[..(whole.Length * 2 / 3)]), ("appended", whole.Concat(Enumerable.Repeat((byte)0x5A, 100)).ToArray()) })
        {
            File.WriteAllBytes(path, bytes);
            var e = Assert.ThrowsExactly<MaeTrainingCheckpointException>(() => MaePretrainCheckpoint.ReadHeader(path), what);
            Console.WriteLine($"{what}: {e.Message}");
            StringAssert.Contains(e.Message, path);
            StringAssert.Contains(e.Message, what == "truncated" ? "truncated" : "appended");
            string rest = e.Message.Replace(path, "");
            foreach (Match m in Regex.Matches(rest, "[0-9]+"))
                Assert.IsLessThanOrEqualTo((decimal)bytes.Length, decimal.Parse(m.Value), $"{what}: the message quotes {m.Value}, more than the file's {bytes.Length} bytes");
        }
    }
}

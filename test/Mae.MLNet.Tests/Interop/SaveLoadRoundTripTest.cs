using System.IO.Compression;
using System.Text;
using Mae.MLNet.Interop;
using Mae.MLNet.Model;
using Mae.MLNet.Tests.Model;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Interop;

[TestClass]
public class SaveLoadRoundTripTest
{
    static readonly MaeConfig Config = new()
    {
        ImageSize = 16, PatchSize = 4, InChannels = 3, EmbedDim = 32, Depth = 2, NumHeads = 2,
        DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2, NormPixLoss = true,
    };

    static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "mae-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    [TestMethod]
    public void SavedMaeLoadsBackWithIdenticalOutputs()
    {
        var dir = TempDir();
        try
        {
            using var model = new MaskedAutoencoder(Config);
            string path = Path.Combine(dir, "mae.safetensors");
            MaeWeightFile.Save(model, path);
            Assert.IsTrue(File.Exists(Path.Combine(dir, "mae.json")), "config JSON beside the weights");
            Assert.IsFalse(Directory.EnumerateFiles(dir, "*.tmp").Any(), "no temporary files left");

            using var loaded = MaeWeightFile.LoadMaskedAutoencoder(path);
            Assert.AreEqual(Config, loaded.Config, "config comes back from the JSON");
            using var scope = NewDisposeScope();
            var imgs = randn(2, 3, 16, 16);
            var noise = rand(2, 16);
            var (l1, p1, m1) = model.Forward(imgs, 0.75, noise);
            var (l2, p2, m2) = loaded.Forward(imgs, 0.75, noise);
            Assert.IsTrue(TensorAssert.Same(p1, p2) && TensorAssert.Same(m1, m2) && TensorAssert.Same(l1, l2));

            // The same file feeds the encoder alone; the decoder is ignored.
            using var encoder = MaeWeightFile.LoadEncoder(path);
            Assert.IsTrue(TensorAssert.Same(model.Encoder.ExtractFeatures(imgs), encoder.ExtractFeatures(imgs)));
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void MismatchListsEveryMissingUnexpectedAndShapeDifference()
    {
        var dir = TempDir();
        try
        {
            using var model = new MaskedAutoencoder(Config);
            string path = Path.Combine(dir, "mae.safetensors");
            MaeWeightFile.Save(model, path);
            var other = Config with { Depth = 3, DecoderEmbedDim = 24, DecoderNumHeads = 2 };
            var e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.LoadMaskedAutoencoder(path, other));
            StringAssert.Contains(e.Message, "missing keys (12)");            // blocks.2.* (12 tensors)
            StringAssert.Contains(e.Message, "blocks.2.attn.qkv.weight");
            StringAssert.Contains(e.Message, "shape differences");
            StringAssert.Contains(e.Message, "decoder_embed.weight: file [16, 32], model [24, 32]");
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void EncoderOnlyFileIsNotAFullMae()
    {
        var dir = TempDir();
        try
        {
            using var encoder = new MaeEncoder(Config);
            string path = Path.Combine(dir, "enc.safetensors");
            MaeWeightFile.Save(encoder, path);
            using (var w = MaeWeightFile.Read(path)) Assert.AreEqual(MaeWeightFile.Kind.EncoderOnly, w.Kind);
            var e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.LoadMaskedAutoencoder(path));
            StringAssert.Contains(e.Message, "encoder only");
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void HandMadeHostilePickleIsRefusedBeforeUnpickling()
    {
        var dir = TempDir();
        try
        {
            // Protocol-2 pickle of os.system('ls'): PROTO 2, GLOBAL 'os system', BINUNICODE 'ls', TUPLE1, REDUCE, STOP.
            var pickle = new List<byte> { 0x80, 0x02 };
            pickle.AddRange(Encoding.ASCII.GetBytes("cos\nsystem\n"));
            pickle.Add((byte)'X'); pickle.AddRange(BitConverter.GetBytes(2)); pickle.AddRange(Encoding.ASCII.GetBytes("ls"));
            pickle.AddRange(new byte[] { 0x85, (byte)'R', (byte)'.' });
            string path = Path.Combine(dir, "evil.pth");
            using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
            using (var s = zip.CreateEntry("archive/data.pkl", CompressionLevel.NoCompression).Open())
                s.Write(pickle.ToArray());
            var e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.Read(path));
            StringAssert.Contains(e.Message, "os.system");
            StringAssert.Contains(e.Message, "weights_only");
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void MissingAndNonWeightFilesAreClearErrors()
    {
        var dir = TempDir();
        try
        {
            Assert.ThrowsExactly<FileNotFoundException>(() => MaeWeightFile.Read(Path.Combine(dir, "nope.pth")));
            string text = Path.Combine(dir, "notes.pth");
            File.WriteAllText(text, "hello");
            var e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.Read(text));
            StringAssert.Contains(e.Message, "not a PyTorch weights file");
            string st = Path.Combine(dir, "bad.safetensors");
            File.WriteAllBytes(st, BitConverter.GetBytes(1_000_000L));
            e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.Read(st));
            StringAssert.Contains(e.Message, "header claims 1000000 bytes");
        }
        finally { Directory.Delete(dir, true); }
    }
}

using System.Buffers.Binary;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Mae.MLNet.FineTuning;
using Mae.MLNet.Interop;
using Mae.MLNet.Input;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Mae.MLNet.Pretraining;

namespace Mae.MLNet.Tests.Interop;

/// <summary>How a hostile file is handed to the library.</summary>
public enum HostileLoad
{
    /// <summary><c>MaeWeightFile.LoadEncoder(path, config: the fixtures' tiny config)</c> — the architecture is trusted.</summary>
    EncoderWithConfig,
    /// <summary><c>MaeWeightFile.LoadEncoder(path)</c> — the architecture comes from the file (names, sidecar, config.json).</summary>
    Encoder,
    /// <summary><c>MaePretrainCheckpoint.LoadModel(path)</c>.</summary>
    PretrainCheckpoint,
    /// <summary><c>MaeFineTuneCheckpoint.LoadModel(path)</c>.</summary>
    FineTuneCheckpoint,
    /// <summary>A model zip: <c>MaeModelZip.LoadVerified</c> (before this existed: ML.NET's plain <c>Model.Load</c>).</summary>
    ModelZip,
    /// <summary>A folder of images: <c>MaeImageFileSource.FromFolder</c>, one evaluation epoch (the transform the
    /// featurize and reconstruct paths use) at the default 224 px, one worker.</summary>
    ImageFolder,
}

/// <summary>One hostile file: what it attacks and how it is loaded.</summary>
public sealed record HostileAttack(string Name, string Class, string What, HostileLoad Load);

/// <summary>
/// Makes the hostile files of issue 14, each small, from the checked-in interop fixtures (official-code files) or
/// from a tiny model saved by the library, and loads them the way a user would. Shared by the tests
/// (Interop/HostileFilesTest.cs) and by test/Mae.MLNet.HostileHost, which loads one file per fresh process and reports its
/// peak memory (the before/after table in docs/security.md). Uses only APIs that existed before the hardening, so
/// the same files can be measured against the old code.
/// </summary>
public static class HostileFiles
{
    /// <summary>Model "i" of the interop fixtures: 16 px, patch 4, 24 wide, 2 blocks × 2 heads, decoder 24 × 1 × 2.</summary>
    public static readonly MaeConfig ConfigI = new()
    {
        ImageSize = 16, PatchSize = 4, InChannels = 3, EmbedDim = 24, Depth = 2, NumHeads = 2,
        DecoderEmbedDim = 24, DecoderDepth = 1, DecoderNumHeads = 2, NormPixLoss = true,
    };

    public static readonly HostileAttack[] All =
    {
        new("xdata-pkl-first", "parser differential", "an extra archive/xdata.pkl written first (a pickle whose storages are other, zeroed entries)", HostileLoad.EncoderWithConfig),
        new("metadata-before-data", "parser differential", "an extra archive/metadata/<k> (zeros) written before archive/data/<k>", HostileLoad.EncoderWithConfig),
        new("duplicate-zip-names", "parser differential", "two entries named archive/data/<k>, the first one zeroed", HostileLoad.EncoderWithConfig),
        new("two-top-folders", "parser differential", "an extra evil/data/<k> (zeros) written first, in a second top folder", HostileLoad.EncoderWithConfig),
        new("names-blocks-20000", "untrusted metadata", "a ViT-Ti-wide encoder safetensors (1 block) plus a key blocks.20000.norm1.weight", HostileLoad.Encoder),
        new("sidecar-100000-layers", "untrusted metadata", "our safetensors + sidecar JSON claiming depth 100 000", HostileLoad.Encoder),
        new("sidecar-mlp-ratio-400000", "untrusted metadata", "our safetensors + sidecar JSON claiming mlp_ratio 400 000", HostileLoad.Encoder),
        new("hf-config-100000-layers", "untrusted metadata", "a Hugging Face folder whose config.json claims 100 000 layers", HostileLoad.Encoder),
        new("hf-config-mlp-ratio-400000", "untrusted metadata", "a Hugging Face folder whose config.json claims intermediate sizes 400 000 × hidden", HostileLoad.Encoder),
        new("pickle-120M-empty-tuples", "memory amplification", "a .pth whose data.pkl is 120 M EMPTY_TUPLE opcodes (deflated)", HostileLoad.EncoderWithConfig),
        new("pickle-2M-empty-tuples", "memory amplification", "a .pth whose data.pkl is 2 M EMPTY_TUPLE opcodes, stored (under the pickle size and compression limits)", HostileLoad.EncoderWithConfig),
        new("storages-3000x1MiB", "memory amplification", "a state dict of 3 000 tensors of 1 MiB, each a deflated entry of zeros", HostileLoad.EncoderWithConfig),
        new("forged-pretrain-checkpoint", "memory amplification", "a pre-training checkpoint whose header claims depth 100 000 (checksum recomputed)", HostileLoad.PretrainCheckpoint),
        new("forged-finetune-checkpoint", "memory amplification", "a fine-tuning checkpoint whose header claims embed_dim 4096 × depth 1 000 (checksum recomputed)", HostileLoad.FineTuneCheckpoint),
        new("pickle-bad-float", "foreign exceptions", "a FLOAT text opcode '1.2.3'", HostileLoad.EncoderWithConfig),
        new("pickle-bad-put", "foreign exceptions", "a PUT text opcode '12x'", HostileLoad.EncoderWithConfig),
        new("pickle-overflow-get", "foreign exceptions", "a GET text opcode 99999999999999999999", HostileLoad.EncoderWithConfig),
        new("names-blocks-overflow", "foreign exceptions", "a key blocks.99999999999999999999.norm1.weight", HostileLoad.Encoder),
        new("sidecar-truncated", "foreign exceptions", "a sidecar JSON cut in the middle", HostileLoad.Encoder),
        new("sidecar-missing-key", "foreign exceptions", "a sidecar JSON without 'depth'", HostileLoad.Encoder),
        new("hf-config-broken", "foreign exceptions", "a config.json that is not JSON", HostileLoad.Encoder),
        new("hf-config-string-layers", "foreign exceptions", "a config.json with \"num_hidden_layers\": \"two\"", HostileLoad.Encoder),
        new("zip-crc-flipped-weight", "integrity", "one byte of a stored weight entry flipped (zip CRC left as it was)", HostileLoad.EncoderWithConfig),
        new("safetensors-overlap", "integrity", "two tensors whose byte ranges overlap", HostileLoad.EncoderWithConfig),
        new("safetensors-duplicate-name", "integrity", "a safetensors header naming one tensor twice", HostileLoad.EncoderWithConfig),
        new("model-zip-edited-onnx", "integrity", "a saved model zip whose ONNX graph has one weight changed (zip entry rewritten, CRC valid)", HostileLoad.ModelZip),
        new("model-zip-flipped-byte", "integrity", "a saved model zip with one byte of the ONNX entry flipped in place", HostileLoad.ModelZip),
        // Issue 23: the surfaces added since (images, model zips, training checkpoints), probed the same way.
        new("image-jpeg-65500x2", "image geometry", "a 400-byte JPEG whose header declares 65 500 × 2 pixels", HostileLoad.ImageFolder),
        new("image-png-2x1000000", "image geometry", "a 65-byte PNG whose header declares 2 × 1 000 000 pixels", HostileLoad.ImageFolder),
        new("image-fifo", "special files", "a FIFO named img.jpg among images", HostileLoad.ImageFolder),
        new("model-zip-fifo", "special files", "a FIFO named model.zip", HostileLoad.ModelZip),
        new("checkpoint-fifo", "special files", "a FIFO named checkpoint-0001.maeckpt", HostileLoad.PretrainCheckpoint),
        new("model-zip-duplicate-graph", "model zips", "the signed graph, then an edited graph without a digest under the same name (ML.NET keeps the last)", HostileLoad.ModelZip),
        new("model-zip-unsigned-beside-signed", "model zips", "an edited graph without a digest in a second OnnxModel entry beside the signed one", HostileLoad.ModelZip),
        new("model-zip-claims-2GB", "model zips", "an OnnxModel entry of 2 MB compressed whose headers claim 2 000 000 000 bytes", HostileLoad.ModelZip),
        new("checkpoint-no-config", "training checkpoints", "an 89-byte pre-training checkpoint whose header has no Config", HostileLoad.PretrainCheckpoint),
        new("checkpoint-numclasses-decoder", "training checkpoints", "a pre-training checkpoint holding a classifier, its header adding NumClasses beside a 4 096 × 48 decoder", HostileLoad.PretrainCheckpoint),
    };

    public static HostileAttack Get(string name) => All.Single(a => a.Name == name);

    /// <summary>Writes the attack's file(s) under <paramref name="dir"/> and returns the path to load.</summary>
    public static string Make(HostileAttack attack, string fixtures, string dir)
    {
        Directory.CreateDirectory(dir);
        string F(string name) => Path.Combine(fixtures, name);
        string Out(string name) => Path.Combine(dir, name);
        string pth = F("official_encoder_only.pth");
        switch (attack.Name)
        {
            case "xdata-pkl-first":
            {
                // A second pickle describing the same state dict (names and shapes read through the public API), whose
                // storages are other entries holding zeros; written first, where a name search finds it first.
                var (top, entries) = ReadZip(pth);
                List<(string Name, string Key, long[] Shape)> tensors;
                using (var w = MaeWeightFile.Read(pth, ConfigI))
                    tensors = w.StateDict.Select((kv, i) => (kv.Key, $"x{i}", kv.Value.shape)).ToList();
                var list = new List<(string, byte[])> { ($"{top}/xdata.pkl", StateDictPickle(tensors)) };
                foreach (var (_, key, shape) in tensors)
                    list.Add(($"{top}/data/{key}", new byte[shape.Aggregate(4L, (a, b) => a * b)]));
                return WriteZip(Out("xdata.pth"), list.Concat(entries.Select(e => (e.Name, e.Bytes))));
            }
            case "metadata-before-data":
            case "two-top-folders":
            case "duplicate-zip-names":
            {
                var (top, entries) = ReadZip(pth);
                var target = entries.Where(e => e.Name.StartsWith($"{top}/data/", StringComparison.Ordinal)).OrderByDescending(e => e.Bytes.Length).First();
                string key = target.Name[(top.Length + 6)..];
                string extraName = attack.Name switch
                {
                    "metadata-before-data" => $"{top}/metadata/{key}",
                    "two-top-folders" => $"evil/data/{key}",
                    _ => target.Name,
                };
                var list = new List<(string, byte[])> { (extraName, new byte[target.Bytes.Length]) };
                list.AddRange(entries.Select(e => (e.Name, e.Bytes)));
                return WriteZip(Out(attack.Name + ".pth"), list);
            }
            case "names-blocks-20000":
            case "names-blocks-overflow":
            {
                // ViT-Ti width (192, 3 heads: a public width, so head counts are inferred), 32 px, patch 16, 1 block.
                var cfg = new MaeConfig { ImageSize = 32, PatchSize = 16, InChannels = 3, EmbedDim = 192, Depth = 1, NumHeads = 3 };
                string path = SaveTinyEncoder(cfg, Out("encoder.safetensors"), keepSidecar: false);
                string key = attack.Name == "names-blocks-20000" ? "blocks.20000.norm1.weight" : "blocks.99999999999999999999.norm1.weight";
                var tensors = ReadSafetensors(path);
                tensors.Add((key, "F32", new long[] { 192 }, new byte[192 * 4]));
                return WriteSafetensors(path, tensors);
            }
            case "sidecar-100000-layers":
            case "sidecar-mlp-ratio-400000":
            case "sidecar-truncated":
            case "sidecar-missing-key":
            {
                string path = SaveTinyEncoder(ConfigI, Out("encoder.safetensors"), keepSidecar: true);
                string sidecar = Path.ChangeExtension(path, ".json");
                var json = JsonNode.Parse(File.ReadAllText(sidecar))!.AsObject();
                switch (attack.Name)
                {
                    case "sidecar-100000-layers": json["depth"] = 100_000; break;
                    case "sidecar-mlp-ratio-400000": json["mlp_ratio"] = 400_000.0; break;
                    case "sidecar-missing-key": json.Remove("depth"); break;
                }
                string text = json.ToJsonString();
                File.WriteAllText(sidecar, attack.Name == "sidecar-truncated" ? text[..(text.Length / 2)] : text);
                return path;
            }
            case "hf-config-100000-layers":
            case "hf-config-mlp-ratio-400000":
            case "hf-config-broken":
            case "hf-config-string-layers":
            {
                string folder = Out("hf");
                Directory.CreateDirectory(folder);
                File.Copy(F("hf/model.safetensors"), Path.Combine(folder, "model.safetensors"), overwrite: true);
                var json = JsonNode.Parse(File.ReadAllText(F("hf/config.json")))!.AsObject();
                switch (attack.Name)
                {
                    case "hf-config-100000-layers": json["num_hidden_layers"] = 100_000; break;
                    case "hf-config-mlp-ratio-400000":
                        json["intermediate_size"] = 24 * 400_000;
                        json["decoder_intermediate_size"] = 24 * 400_000;
                        break;
                    case "hf-config-string-layers": json["num_hidden_layers"] = "two"; break;
                }
                File.WriteAllText(Path.Combine(folder, "config.json"), attack.Name == "hf-config-broken" ? "{\"hidden_size\": 24, " : json.ToJsonString());
                return folder;
            }
            case "pickle-120M-empty-tuples":
            case "pickle-2M-empty-tuples":
            {
                bool big = attack.Name.StartsWith("pickle-120M", StringComparison.Ordinal);
                long count = big ? 120_000_000 : 2_000_000;
                string path = Out(attack.Name + ".pth");
                using var zip = new ZipArchive(File.Create(path), ZipArchiveMode.Create);
                using (var s = zip.CreateEntry("archive/data.pkl", big ? CompressionLevel.SmallestSize : CompressionLevel.NoCompression).Open())
                {
                    s.Write(new byte[] { 0x80, 2 });
                    var chunk = Enumerable.Repeat((byte)')', 1 << 20).ToArray();
                    for (long left = count; left > 0; left -= chunk.Length) s.Write(chunk, 0, (int)Math.Min(left, chunk.Length));
                    s.WriteByte((byte)'.');
                }
                WriteEntry(zip, "archive/version", "3\n"u8.ToArray(), CompressionLevel.NoCompression);
                return path;
            }
            case "storages-3000x1MiB":
            {
                const int n = 3000, numel = 1 << 18;
                var tensors = Enumerable.Range(0, n).Select(i => ($"t{i}", i.ToString(), new long[] { numel })).ToList();
                string path = Out("storages.pth");
                using var zip = new ZipArchive(File.Create(path), ZipArchiveMode.Create);
                WriteEntry(zip, "archive/data.pkl", StateDictPickle(tensors), CompressionLevel.NoCompression);
                var zeros = new byte[numel * 4];
                for (int i = 0; i < n; i++) WriteEntry(zip, $"archive/data/{i}", zeros, CompressionLevel.Fastest);
                WriteEntry(zip, "archive/version", "3\n"u8.ToArray(), CompressionLevel.NoCompression);
                return path;
            }
            case "forged-pretrain-checkpoint":
            {
                using var model = new MaskedAutoencoder(ConfigI);
                var header = new MaePretrainCheckpointHeader { Config = ConfigI with { Depth = 100_000 }, EpochsCompleted = 1 };
                return WriteCheckpoint(Out("checkpoint-0001.maeckpt"), "MAECKPT1", JsonSerializer.Serialize(header), model);
            }
            case "forged-finetune-checkpoint":
            {
                using var model = new VitClassifier(ConfigI, 3, true);
                var header = new MaeFineTuneCheckpointHeader
                {
                    Config = ConfigI with { EmbedDim = 4096, Depth = 1000, NumHeads = 16 }, NumClasses = 3, GlobalPool = true, EpochsCompleted = 1,
                };
                return WriteCheckpoint(Out("finetune-0001.maeft"), "MAEFTCK1", JsonSerializer.Serialize(header), model);
            }
            case "pickle-bad-float":
            case "pickle-bad-put":
            case "pickle-overflow-get":
            {
                byte[] body = attack.Name switch
                {
                    "pickle-bad-float" => "F1.2.3\n."u8.ToArray(),
                    "pickle-bad-put" => "]p12x\n."u8.ToArray(),
                    _ => "]g99999999999999999999\n."u8.ToArray(),
                };
                string path = Out(attack.Name + ".pth");
                using var zip = new ZipArchive(File.Create(path), ZipArchiveMode.Create);
                WriteEntry(zip, "archive/data.pkl", new byte[] { 0x80, 2 }.Concat(body).ToArray(), CompressionLevel.NoCompression);
                WriteEntry(zip, "archive/version", "3\n"u8.ToArray(), CompressionLevel.NoCompression);
                return path;
            }
            case "zip-crc-flipped-weight":
            {
                var bytes = File.ReadAllBytes(pth);
                var (top, entries) = ReadZip(pth);
                var target = entries.Where(e => e.Name.StartsWith($"{top}/data/", StringComparison.Ordinal)).OrderByDescending(e => e.Bytes.Length).First();
                int at = DataOffset(bytes, target.Name) + target.Bytes.Length / 2;
                bytes[at] ^= 0x40;                                    // a float's exponent bit: a very different value
                string path = Out("crc.pth");
                File.WriteAllBytes(path, bytes);
                return path;
            }
            case "safetensors-overlap":
            case "safetensors-duplicate-name":
            {
                var tensors = ReadSafetensors(F("timm_encoder.safetensors"));
                string path = Out(attack.Name + ".safetensors");
                if (attack.Name == "safetensors-overlap")
                {
                    // norm.weight's range is declared as the first bytes of another tensor of the same size.
                    int i = tensors.FindIndex(t => t.Name == "norm.weight");
                    int j = tensors.FindIndex(t => t.Name == "norm.bias");
                    return WriteSafetensors(path, tensors, overlap: (i, j));
                }
                return WriteSafetensors(path, tensors, duplicate: tensors.FindIndex(t => t.Name == "norm.weight"));
            }
            case "model-zip-edited-onnx":
            case "model-zip-flipped-byte":
            {
                string path = Out("model.zip");
                SaveTinyModelZip(path);
                var (_, entries) = ReadZip(path, requireOneTop: false);
                var graph = entries.Single(e => e.Name.EndsWith("OnnxModel", StringComparison.Ordinal));
                if (attack.Name == "model-zip-flipped-byte")
                {
                    long compressed;
                    using (var zip = ZipFile.OpenRead(path)) compressed = zip.GetEntry(graph.Name)!.CompressedLength;
                    var bytes = File.ReadAllBytes(path);
                    bytes[DataOffset(bytes, graph.Name) + (int)(compressed * 3 / 4)] ^= 0x01;
                    File.WriteAllBytes(path, bytes);
                    return path;
                }
                // One float of the largest initializer changed, the graph re-serialized (the digest entry kept as it
                // was), the zip entry rewritten: a well-formed graph and a valid zip CRC.
                var model = Onnx.ModelProto.Parser.ParseFrom(graph.Bytes.AsSpan(4).ToArray());
                var init = model.Graph.Initializer.OrderByDescending(t => t.RawData.Length + t.FloatData.Count * 4).First();
                if (init.RawData.Length > 0)
                {
                    var raw = init.RawData.ToByteArray();
                    BinaryPrimitives.WriteSingleLittleEndian(raw.AsSpan(0), BinaryPrimitives.ReadSingleLittleEndian(raw) + 0.5f);
                    init.RawData = Google.Protobuf.ByteString.CopyFrom(raw);
                }
                else init.FloatData[0] += 0.5f;
                var onnx = model.ToByteArray();
                var blob = new byte[onnx.Length + 4];
                BinaryPrimitives.WriteInt32LittleEndian(blob, onnx.Length);
                onnx.CopyTo(blob, 4);
                var rewritten = entries.Select(e => (e.Name, e.Name == graph.Name ? blob : e.Bytes)).ToList();
                File.Delete(path);
                return WriteZip(path, rewritten, CompressionLevel.Optimal);
            }
            case "image-jpeg-65500x2":
            case "image-png-2x1000000":
            case "image-fifo":
            {
                string images = Out("images");
                Directory.CreateDirectory(images);
                if (attack.Name == "image-fifo") MakeFifo(Path.Combine(images, "img.jpg"));
                else if (attack.Name == "image-png-2x1000000") File.WriteAllBytes(Path.Combine(images, "thin.png"), PngHeader(2, 1_000_000));
                else File.WriteAllBytes(Path.Combine(images, "thin.jpg"), JpegHeader(65_500, 2));
                return images;
            }
            case "model-zip-fifo": return MakeFifo(Out("model.zip"));
            case "checkpoint-fifo": return MakeFifo(Out("checkpoint-0001.maeckpt"));
            case "model-zip-duplicate-graph":
            case "model-zip-unsigned-beside-signed":
            {
                string honest = Out("honest.zip");
                SaveTinyModelZip(honest);
                var (_, entries) = ReadZip(honest, requireOneTop: false);
                var graph = entries.Single(e => e.Name.EndsWith("/OnnxModel", StringComparison.Ordinal));
                var edited = EditedUnsignedGraph(graph.Bytes);
                string name = attack.Name == "model-zip-duplicate-graph" ? graph.Name : "Model/Extra/OnnxModel";
                return WriteZip(Out("model.zip"), entries.Select(e => (e.Name, e.Bytes)).Append((name, edited)), CompressionLevel.Fastest);
            }
            case "model-zip-claims-2GB":
            {
                var noise = new byte[2 << 20];
                new Random(1).NextBytes(noise);
                string path = WriteZip(Out("model.zip"), new[] { ("Model/OnnxModel", noise) }, CompressionLevel.Fastest);
                var bytes = File.ReadAllBytes(path);
                // The uncompressed size: offset 22 of the local header, 24 of the central directory header.
                PatchUInt32(bytes, 0x04034b50, 22, 2_000_000_000);
                PatchUInt32(bytes, 0x02014b50, 24, 2_000_000_000);
                File.WriteAllBytes(path, bytes);
                return path;
            }
            case "checkpoint-no-config":
                return WriteCheckpoint(Out("checkpoint-0001.maeckpt"), "MAECKPT1", """{"FormatVersion":2,"EpochsCompleted":1}""", null);
            case "checkpoint-numclasses-decoder":
            {
                using var classifier = new VitClassifier(ConfigI, 3, true);
                var header = JsonNode.Parse(JsonSerializer.Serialize(new MaePretrainCheckpointHeader
                {
                    Config = ConfigI with { DecoderEmbedDim = 4096, DecoderDepth = 48, DecoderNumHeads = 16 }, EpochsCompleted = 1,
                }))!.AsObject();
                header["NumClasses"] = 3;
                return WriteCheckpoint(Out("checkpoint-0001.maeckpt"), "MAECKPT1", header.ToJsonString(), classifier);
            }
            default:
                throw new ArgumentException($"Unknown attack '{attack.Name}'.");
        }
    }

    /// <summary>Hands <paramref name="path"/> to the library as <paramref name="load"/> says.</summary>
    public static void Load(HostileLoad load, string path)
    {
        switch (load)
        {
            case HostileLoad.EncoderWithConfig: MaeWeightFile.LoadEncoder(path, ConfigI).Dispose(); break;
            case HostileLoad.Encoder: MaeWeightFile.LoadEncoder(path).Dispose(); break;
            case HostileLoad.PretrainCheckpoint: MaePretrainCheckpoint.LoadModel(path).Dispose(); break;
            case HostileLoad.FineTuneCheckpoint: MaeFineTuneCheckpoint.LoadModel(path).Dispose(); break;
            case HostileLoad.ImageFolder:
            {
                var source = MaeImageFileSource.FromFolder(path, new MaeImageInputOptions { Augmentation = new MaeAugmentationOptions { OutputSize = 224 }, Workers = 1 });
                foreach (var t in source.Batches(new MaeEpochPlan { BatchSize = 1, Training = false })) t.Dispose();
                break;
            }
            case HostileLoad.ModelZip:
#if MAE_BEFORE_HARDENING
                new MLContext(0).Model.Load(path, out _);
#else
                new MLContext(0).Model.LoadVerified(path, out _);
#endif
                break;
        }
    }

    // ---- pieces ------------------------------------------------------------------------------------------------

    /// <summary>A FIFO (named pipe) at <paramref name="path"/>, made with mkfifo (Linux and macOS).</summary>
    public static string MakeFifo(string path)
    {
        using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("mkfifo", new[] { path }) { UseShellExecute = false })!;
        p.WaitForExit();
        if (p.ExitCode != 0) throw new IOException($"mkfifo {path} failed (exit {p.ExitCode}).");
        return path;
    }

    /// <summary>A PNG of about 65 bytes whose header declares <paramref name="width"/> × <paramref name="height"/> RGB
    /// pixels and whose data is one empty deflate block (it ends at once).</summary>
    public static byte[] PngHeader(int width, int height)
    {
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; ihdr[9] = 2; // 8-bit RGB
        var ms = new MemoryStream();
        ms.Write(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A });
        void Chunk(string type, byte[] data)
        {
            var len = new byte[4];
            BinaryPrimitives.WriteInt32BigEndian(len, data.Length);
            ms.Write(len);
            var td = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
            ms.Write(td);
            var crc = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(crc, System.IO.Hashing.Crc32.HashToUInt32(td));
            ms.Write(crc);
        }
        Chunk("IHDR", ihdr);
        Chunk("IDAT", new byte[] { 0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01 });
        Chunk("IEND", Array.Empty<byte>());
        return ms.ToArray();
    }

    /// <summary>A 16 × 16 JPEG whose frame header is rewritten to declare <paramref name="width"/> ×
    /// <paramref name="height"/> (at most 65 500 each, libjpeg's limit): about 400 bytes whose scan ends long before.</summary>
    public static byte[] JpegHeader(int width, int height)
    {
        using var bitmap = new SkiaSharp.SKBitmap(16, 16);
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 16; x++) bitmap.SetPixel(x, y, new SkiaSharp.SKColor((byte)(x * 16), (byte)(y * 16), (byte)(x * y)));
        using var data = bitmap.Encode(SkiaSharp.SKEncodedImageFormat.Jpeg, 90);
        var c = data.ToArray();
        int sof = Enumerable.Range(0, c.Length - 1).First(i => c[i] == 0xFF && c[i + 1] is 0xC0 or 0xC1 or 0xC2);
        BinaryPrimitives.WriteUInt16BigEndian(c.AsSpan(sof + 5), (ushort)height);
        BinaryPrimitives.WriteUInt16BigEndian(c.AsSpan(sof + 7), (ushort)width);
        return c;
    }

    /// <summary>A graph entry's bytes (int32 length + ONNX) with every value of its largest weight changed and its
    /// digest removed: a well-formed graph ML.NET loads, which carries no digest.</summary>
    public static byte[] EditedUnsignedGraph(byte[] entry)
    {
        var model = Onnx.ModelProto.Parser.ParseFrom(entry.AsSpan(4).ToArray());
        model.MetadataProps.Remove(model.MetadataProps.Single(p => p.Key == "mae.sha256"));
        var init = model.Graph.Initializer.OrderByDescending(t => t.RawData.Length + t.FloatData.Count * 4).First();
        if (init.RawData.Length > 0)
        {
            var raw = init.RawData.ToByteArray();
            for (int i = 0; i + 4 <= raw.Length; i += 4) BinaryPrimitives.WriteSingleLittleEndian(raw.AsSpan(i), 0.5f);
            init.RawData = ByteString.CopyFrom(raw);
        }
        else for (int i = 0; i < init.FloatData.Count; i++) init.FloatData[i] = 0.5f;
        var onnx = model.ToByteArray();
        var blob = new byte[onnx.Length + 4];
        BinaryPrimitives.WriteInt32LittleEndian(blob, onnx.Length);
        onnx.CopyTo(blob, 4);
        return blob;
    }

    /// <summary>Writes <paramref name="value"/> at <paramref name="offset"/> of the one zip header with
    /// <paramref name="signature"/>.</summary>
    public static void PatchUInt32(byte[] zip, uint signature, int offset, uint value)
    {
        int found = 0;
        for (int i = 0; i + offset + 4 <= zip.Length; i++)
            if (BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(i)) == signature)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(i + offset), value);
                found++;
            }
        if (found != 1) throw new InvalidDataException($"expected one zip header with signature {signature:x8}, found {found}");
    }

    sealed record ZipItem(string Name, byte[] Bytes);

    static (string Top, List<ZipItem> Entries) ReadZip(string path, bool requireOneTop = true)
    {
        using var zip = ZipFile.OpenRead(path);
        var entries = new List<ZipItem>();
        foreach (var e in zip.Entries)
        {
            using var s = e.Open();
            var ms = new MemoryStream();
            s.CopyTo(ms);
            entries.Add(new ZipItem(e.FullName, ms.ToArray()));
        }
        string top = entries[0].Name.Split('/')[0];
        if (requireOneTop && entries.Any(e => !e.Name.StartsWith(top + "/", StringComparison.Ordinal))) throw new InvalidDataException("not one top folder");
        return (top, entries);
    }

    static string WriteZip(string path, IEnumerable<(string Name, byte[] Bytes)> entries, CompressionLevel level = CompressionLevel.NoCompression)
    {
        using var zip = new ZipArchive(File.Create(path), ZipArchiveMode.Create);
        foreach (var (name, bytes) in entries) WriteEntry(zip, name, bytes, level);
        return path;
    }

    static void WriteEntry(ZipArchive zip, string name, byte[] bytes, CompressionLevel level)
    {
        using var s = zip.CreateEntry(name, level).Open();
        s.Write(bytes);
    }

    /// <summary>Where the data of the stored entry <paramref name="name"/> starts in the zip's bytes (its local header).</summary>
    static int DataOffset(byte[] zip, string name)
    {
        var nameBytes = Encoding.UTF8.GetBytes(name);
        for (int i = 0; i + 30 + nameBytes.Length <= zip.Length; i++)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(i)) != 0x04034b50) continue;
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(i + 26));
            int extraLength = BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(i + 28));
            if (nameLength == nameBytes.Length && zip.AsSpan(i + 30, nameLength).SequenceEqual(nameBytes)) return i + 30 + nameLength + extraLength;
        }
        throw new InvalidDataException($"no local header for '{name}'");
    }

    /// <summary>A protocol-2 pickle of {name: _rebuild_tensor_v2(('storage', FloatStorage, key, 'cpu', numel), 0, shape,
    /// contiguous stride, False, OrderedDict())}, as torch.save writes a state dict of contiguous float tensors.</summary>
    static byte[] StateDictPickle(IEnumerable<(string Name, string Key, long[] Shape)> tensors)
    {
        var p = new MemoryStream();
        void B(params byte[] b) => p.Write(b);
        void Str(string s) { var u = Encoding.UTF8.GetBytes(s); B((byte)'X'); var l = new byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(l, (uint)u.Length); B(l); B(u); }
        void Int(long v) { B((byte)'J'); var l = new byte[4]; BinaryPrimitives.WriteInt32LittleEndian(l, checked((int)v)); B(l); }
        void Global(string module, string name) => B(Encoding.ASCII.GetBytes($"c{module}\n{name}\n"));
        B(0x80, 2, (byte)'}', (byte)'(');
        foreach (var (name, key, shape) in tensors)
        {
            Str(name);
            Global("torch._utils", "_rebuild_tensor_v2");
            B((byte)'(');                                                   // args
            B((byte)'('); Str("storage"); Global("torch", "FloatStorage"); Str(key); Str("cpu"); Int(shape.Aggregate(1L, (a, b) => a * b)); B((byte)'t', (byte)'Q');
            Int(0);
            B((byte)'('); foreach (var s in shape) Int(s); B((byte)'t');
            B((byte)'('); long stride = 1; var strides = new long[shape.Length];
            for (int d = shape.Length - 1; d >= 0; d--) { strides[d] = stride; stride *= shape[d]; }
            foreach (var s in strides) Int(s); B((byte)'t');
            B(0x89);
            Global("collections", "OrderedDict"); B((byte)')', (byte)'R');
            B((byte)'t', (byte)'R');
        }
        B((byte)'u', (byte)'.');
        return p.ToArray();
    }

    static string SaveTinyEncoder(MaeConfig config, string path, bool keepSidecar)
    {
        using var encoder = new MaeEncoder(config);
        MaeWeightFile.Save(encoder, path);
        if (!keepSidecar) File.Delete(Path.ChangeExtension(path, ".json"));
        return path;
    }

    static List<(string Name, string DType, long[] Shape, byte[] Bytes)> ReadSafetensors(string path)
    {
        var bytes = File.ReadAllBytes(path);
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        var header = JsonNode.Parse(bytes.AsSpan(8, (int)headerLength))!.AsObject();
        var result = new List<(string, string, long[], byte[])>();
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__") continue;
            var o = node!.AsObject();
            var offsets = o["data_offsets"]!.AsArray().Select(v => v!.GetValue<long>()).ToArray();
            result.Add((name, o["dtype"]!.GetValue<string>(), o["shape"]!.AsArray().Select(v => v!.GetValue<long>()).ToArray(),
                        bytes.AsSpan((int)(8 + headerLength + offsets[0]), (int)(offsets[1] - offsets[0])).ToArray()));
        }
        return result;
    }

    /// <summary>Writes a safetensors file; <paramref name="overlap"/> (i, j) declares tensor i at tensor j's range
    /// (same size) instead of its own; <paramref name="duplicate"/> repeats tensor k's header entry.</summary>
    static string WriteSafetensors(string path, List<(string Name, string DType, long[] Shape, byte[] Bytes)> tensors,
                                   (int I, int J)? overlap = null, int? duplicate = null)
    {
        var entries = new List<string>();
        var data = new MemoryStream();
        var offsets = new (long, long)[tensors.Count];
        for (int k = 0; k < tensors.Count; k++)
        {
            if (overlap is { } o && o.I == k) continue;              // its declared range is another tensor's
            offsets[k] = (data.Length, data.Length + tensors[k].Bytes.Length);
            data.Write(tensors[k].Bytes);
        }
        for (int k = 0; k < tensors.Count; k++)
        {
            var (begin, end) = overlap is { } o && o.I == k ? offsets[o.J] : offsets[k];
            var t = tensors[k];
            string entry = $"\"{t.Name}\":{{\"dtype\":\"{t.DType}\",\"shape\":[{string.Join(",", t.Shape)}],\"data_offsets\":[{begin},{end}]}}";
            entries.Add(entry);
            if (duplicate == k) entries.Add(entry);
        }
        var header = Encoding.UTF8.GetBytes("{" + string.Join(",", entries) + "}");
        int padded = (header.Length + 7) / 8 * 8;
        using var f = File.Create(path);
        var len = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(len, padded);
        f.Write(len);
        f.Write(header);
        for (int k = header.Length; k < padded; k++) f.WriteByte((byte)' ');
        data.Position = 0;
        data.CopyTo(f);
        return path;
    }

    /// <summary>The training checkpoint container (magic, payload, payload length, SHA-256 of the payload) around a
    /// JSON header and a real Module.save section; nothing else follows, as only the model is loaded.</summary>
    public static string WriteCheckpoint(string path, string magic, string headerJson, TorchSharp.torch.nn.Module? model)
    {
        var payload = new MemoryStream();
        using (var w = new BinaryWriter(payload, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(headerJson);
            if (model is null) w.Write((byte)0);   // an empty Module.save section: no weights
            else model.save(w);
        }
        var body = payload.ToArray();
        using var f = File.Create(path);
        f.Write(Encoding.ASCII.GetBytes(magic));
        f.Write(body);
        var len = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(len, body.Length);
        f.Write(len);
        f.Write(SHA256.HashData(body));
        return path;
    }

    public sealed class PixelRow
    {
        [VectorType(3 * 16 * 16)] public float[] Pixels { get; set; } = new float[3 * 16 * 16];
    }

    /// <summary>A fitted MaeFeaturize pipeline over a tiny encoder, saved with ML.NET's Model.Save.</summary>
    public static void SaveTinyModelZip(string path)
    {
        TorchRuntime.Seed(3);
        var ml = new MLContext(seed: 0);
        using var encoder = new MaeEncoder(ConfigI);
        var rows = Enumerable.Range(0, 4).Select(i => new PixelRow { Pixels = Enumerable.Range(0, 768).Select(k => (k * 7 + i) % 13 / 13f).ToArray() }).ToList();
        var data = ml.Data.LoadFromEnumerable(rows);
        var model = ml.Transforms.MaeFeaturize("Features", "Pixels", encoder, MaePooling.Cls, batchSize: 4, device: MaeDevice.Cpu).Fit(data);
        ml.Model.Save(model, data.Schema, path);
    }
}

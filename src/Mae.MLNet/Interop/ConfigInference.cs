using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Mae.MLNet.Model;
using static TorchSharp.torch;

namespace Mae.MLNet.Interop;

/// <summary>Architecture from tensor shapes (widths, depths, patch, grid, MLP ratio) plus what shapes cannot tell
/// (head counts) from a preset, a config file, or the public models' conventions.</summary>
internal static class ConfigInference
{
    /// <summary>Head counts of the public ViTs by width: ViT-Ti 192/3, S 384/6, B 768/12, L 1024/16, H 1280/16;
    /// the MAE decoder 512/16.</summary>
    static readonly Dictionary<long, int> KnownHeads = new() { [192] = 3, [384] = 6, [768] = 12, [1024] = 16, [1280] = 16, [512] = 16 };

    public static MaeConfig Infer(IReadOnlyDictionary<string, Tensor> sd, MaeConfig? hint, string source)
    {
        Tensor Need(string key) => sd.TryGetValue(key, out var t) ? t
            : throw new MaeCheckpointException($"'{source}' has no '{key}', so its architecture cannot be inferred; pass a config.");
        var proj = Need("patch_embed.proj.weight");
        if (proj.dim() != 4 || proj.shape[2] != proj.shape[3])
            throw new MaeCheckpointException($"'{source}': patch_embed.proj.weight should be [D, C, p, p]; got [{string.Join(", ", proj.shape)}].");
        int d = (int)proj.shape[0], c = (int)proj.shape[1], p = (int)proj.shape[2];
        var pos = Need("pos_embed");
        long patches = pos.shape[1] - 1;
        int grid = (int)Math.Round(Math.Sqrt(patches));
        if (grid * grid != patches) throw new MaeCheckpointException($"'{source}': pos_embed has {patches} patch rows, not a square grid.");
        int depth = CountBlocks(sd.Keys, "blocks");
        if (depth == 0) throw new MaeCheckpointException($"'{source}' has no encoder blocks (blocks.N.*).");
        double mlpRatio = Need("blocks.0.mlp.fc1.weight").shape[0] / (double)d;

        var config = (hint ?? new MaeConfig()) with
        {
            ImageSize = grid * p, PatchSize = p, InChannels = c, EmbedDim = d, Depth = depth, MlpRatio = mlpRatio,
            NumHeads = hint?.EmbedDim == d ? hint.NumHeads : Heads(d, "encoder", source),
        };
        if (sd.TryGetValue("decoder_embed.weight", out var decEmbed))
        {
            int dd = (int)decEmbed.shape[0];
            config = config with
            {
                DecoderEmbedDim = dd,
                DecoderDepth = CountBlocks(sd.Keys, "decoder_blocks"),
                DecoderNumHeads = hint?.DecoderEmbedDim == dd ? hint.DecoderNumHeads : Heads(dd, "decoder", source),
            };
        }
        return config;
    }

    static int Heads(long width, string what, string source)
        => KnownHeads.TryGetValue(width, out int h) ? h
         : throw new MaeCheckpointException(
               $"'{source}': the {what} is {width} wide, not a public ViT width, and head counts cannot be read from weights. " +
               "Pass a MaeConfig (or a preset name) that gives the head counts.");

    static int CountBlocks(IEnumerable<string> keys, string prefix)
    {
        var rx = new Regex("^" + Regex.Escape(prefix) + @"\.(\d+)\.");
        return keys.Select(k => rx.Match(k)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value) + 1).DefaultIfEmpty(0).Max();
    }

    /// <summary>Hugging Face ViTMAE <c>config.json</c>.</summary>
    public static MaeConfig FromHuggingFace(string json, string source)
    {
        using var doc = JsonDocument.Parse(json);
        var r = doc.RootElement;
        int I(string k) => r.TryGetProperty(k, out var v) ? v.GetInt32() : throw new MaeCheckpointException($"'{source}' lacks '{k}'.");
        string act = r.TryGetProperty("hidden_act", out var a) ? a.GetString() ?? "gelu" : "gelu";
        if (act != "gelu") throw new MaeCheckpointException($"'{source}': hidden_act '{act}' is not supported (expected 'gelu').");
        if (r.TryGetProperty("qkv_bias", out var qb) && !qb.GetBoolean())
            throw new MaeCheckpointException($"'{source}': qkv_bias false is not supported (the MAE uses qkv bias).");
        int hidden = I("hidden_size");
        if (r.TryGetProperty("decoder_intermediate_size", out var di) && r.TryGetProperty("decoder_hidden_size", out var dh)
            && di.GetInt32() * hidden != I("intermediate_size") * dh.GetInt32())
            throw new MaeCheckpointException($"'{source}': encoder and decoder MLP ratios differ; Mae.MLNet uses one mlp_ratio for both.");
        return new MaeConfig
        {
            ImageSize = I("image_size"), PatchSize = I("patch_size"), InChannels = r.TryGetProperty("num_channels", out var nc) ? nc.GetInt32() : 3,
            EmbedDim = hidden, Depth = I("num_hidden_layers"), NumHeads = I("num_attention_heads"),
            MlpRatio = I("intermediate_size") / (double)hidden,
            DecoderEmbedDim = I("decoder_hidden_size"), DecoderDepth = I("decoder_num_hidden_layers"),
            DecoderNumHeads = I("decoder_num_attention_heads"),
            NormPixLoss = r.TryGetProperty("norm_pix_loss", out var np) && np.ValueKind == JsonValueKind.True,
            LayerNormEps = r.TryGetProperty("layer_norm_eps", out var eps) ? eps.GetDouble() : 1e-12,
        };
    }

    /// <summary>Our own config JSON (written beside saved weights), with the official code's argument names.</summary>
    public static MaeConfig FromOurJson(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var r = doc.RootElement;
        int I(string k) => r.GetProperty(k).GetInt32();
        return new MaeConfig
        {
            ImageSize = I("img_size"), PatchSize = I("patch_size"), InChannels = I("in_chans"), EmbedDim = I("embed_dim"),
            Depth = I("depth"), NumHeads = I("num_heads"), DecoderEmbedDim = I("decoder_embed_dim"),
            DecoderDepth = I("decoder_depth"), DecoderNumHeads = I("decoder_num_heads"),
            MlpRatio = r.GetProperty("mlp_ratio").GetDouble(), NormPixLoss = r.GetProperty("norm_pix_loss").GetBoolean(),
            LayerNormEps = r.GetProperty("layer_norm_eps").GetDouble(),
        };
    }

    public static string ToOurJson(MaeConfig c) => JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["img_size"] = c.ImageSize, ["patch_size"] = c.PatchSize, ["in_chans"] = c.InChannels, ["embed_dim"] = c.EmbedDim,
        ["depth"] = c.Depth, ["num_heads"] = c.NumHeads, ["decoder_embed_dim"] = c.DecoderEmbedDim,
        ["decoder_depth"] = c.DecoderDepth, ["decoder_num_heads"] = c.DecoderNumHeads, ["mlp_ratio"] = c.MlpRatio,
        ["norm_pix_loss"] = c.NormPixLoss, ["layer_norm_eps"] = c.LayerNormEps,
    }, new JsonSerializerOptions { WriteIndented = true });

    public static bool IsOurJson(string json)
    {
        try { using var doc = JsonDocument.Parse(json); return doc.RootElement.TryGetProperty("embed_dim", out _); }
        catch (JsonException) { return false; }
    }
}

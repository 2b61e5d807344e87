using System.Security.Cryptography;
using Google.Protobuf;
using Onnx;

namespace Mae.MLNet.Interop.Onnx;

/// <summary>
/// A SHA-256 of an ONNX model we write, recorded inside the model as its last metadata entry (<see cref="Key"/>):
/// the digest covers every byte of the serialized model except that entry, so any edit to the graph, a weight, the
/// opset or the other metadata changes it. It is an integrity check (damage, accidental or careless edits), not a
/// signature: whoever rewrites a weight can also rewrite the digest.
/// </summary>
internal static class OnnxDigest
{
    /// <summary>The metadata key of the digest (lower-case hex SHA-256).</summary>
    public const string Key = "mae.sha256";

    /// <summary>What <see cref="Check"/> found.</summary>
    public enum Status
    {
        /// <summary>The model carries a digest and it matches.</summary>
        Valid,
        /// <summary>The model carries no digest (not written by Mae.MLNet, or by an older version).</summary>
        Missing,
        /// <summary>The model carries a digest that does not match its bytes.</summary>
        Mismatch,
        /// <summary>The bytes are not a well-formed protobuf message at the top level.</summary>
        Malformed,
    }

    /// <summary>Serializes <paramref name="model"/> followed by its digest entry. The model must not use fields numbered
    /// above metadata_props (training_info, functions), which protobuf would write after the digest.</summary>
    internal static void Write(ModelProto model, Stream stream)
    {
        if (model.TrainingInfo.Count > 0 || model.Functions.Count > 0)
            throw new NotSupportedException("ONNX models with training_info or functions cannot carry a trailing digest.");
        if (model.MetadataProps.Any(p => p.Key == Key))
            throw new ArgumentException($"The model already carries a '{Key}' entry.", nameof(model));
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var hashing = new HashingStream(stream, sha);
        var body = new CodedOutputStream(hashing, leaveOpen: true);
        model.WriteTo(body);
        body.Flush();
        var entry = new StringStringEntryProto { Key = Key, Value = Convert.ToHexStringLower(sha.GetHashAndReset()) };
        var tail = new CodedOutputStream(stream, leaveOpen: true);
        tail.WriteTag(ModelProto.MetadataPropsFieldNumber, WireFormat.WireType.LengthDelimited);
        tail.WriteMessage(entry);
        tail.Flush();
    }

    /// <summary>Checks the digest of a serialized ONNX model: finds the top-level metadata entry <see cref="Key"/> and
    /// hashes every other byte.</summary>
    public static Status Check(ReadOnlySpan<byte> model)
    {
        int pos = 0, digestStart = -1, digestEnd = -1;
        string? recorded = null;
        while (pos < model.Length)
        {
            int start = pos;
            if (!Varint(model, ref pos, out ulong tag)) return Status.Malformed;
            int field = (int)(tag >> 3), wire = (int)(tag & 7);
            switch (wire)
            {
                case 0: if (!Varint(model, ref pos, out _)) return Status.Malformed; break;
                case 1: pos += 8; break;
                case 5: pos += 4; break;
                case 2:
                {
                    if (!Varint(model, ref pos, out ulong length) || length > (ulong)(model.Length - pos)) return Status.Malformed;
                    var payload = model.Slice(pos, (int)length);
                    pos += (int)length;
                    if (field == ModelProto.MetadataPropsFieldNumber && TryParseEntry(payload, out var key, out var value) && key == Key)
                    {
                        if (recorded is not null) return Status.Malformed;    // two digests
                        (recorded, digestStart, digestEnd) = (value, start, pos);
                    }
                    break;
                }
                default: return Status.Malformed;
            }
            if (pos > model.Length || field == 0) return Status.Malformed;
        }
        if (recorded is null) return Status.Missing;
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(model[..digestStart]);
        sha.AppendData(model[digestEnd..]);
        return string.Equals(Convert.ToHexStringLower(sha.GetHashAndReset()), recorded, StringComparison.Ordinal) ? Status.Valid : Status.Mismatch;
    }

    static bool TryParseEntry(ReadOnlySpan<byte> entry, out string? key, out string? value)
    {
        key = value = null;
        try
        {
            var parsed = StringStringEntryProto.Parser.ParseFrom(entry);
            (key, value) = (parsed.Key, parsed.Value);
            return true;
        }
        catch (InvalidProtocolBufferException) { return false; }
    }

    static bool Varint(ReadOnlySpan<byte> s, ref int pos, out ulong value)
    {
        value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (pos >= s.Length) return false;
            byte b = s[pos++];
            value |= (ulong)(b & 0x7f) << shift;
            if ((b & 0x80) == 0) return true;
        }
        return false;
    }

    /// <summary>Passes writes through to <paramref name="inner"/> while hashing them.</summary>
    sealed class HashingStream(Stream inner, IncrementalHash sha) : Stream
    {
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            sha.AppendData(buffer);
            inner.Write(buffer);
        }
        public override void Flush() => inner.Flush();
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}

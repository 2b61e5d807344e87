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
        using var checker = new Checker();
        checker.Append(model);
        return checker.Finish();
    }

    /// <summary>
    /// <see cref="Check"/> over a model that arrives in pieces (a zip entry read in chunks): the top-level fields are
    /// parsed as the bytes come, each field's bytes are hashed as they pass except a small metadata entry, which is held
    /// (at most <see cref="MaxHeldEntry"/> bytes) until it is known whether it is the digest. Memory is bounded
    /// whatever the model's size or what its bytes claim.
    /// </summary>
    internal sealed class Checker : IDisposable
    {
        /// <summary>Largest metadata entry held back to see whether it is the digest (ours is about 90 bytes).</summary>
        const int MaxHeldEntry = 1 << 16;
        readonly IncrementalHash sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        readonly List<byte> head = new(24);     // the tag and length varints of the field being read
        byte[]? held;                          // a metadata entry's payload, while it is read
        int heldAt;
        int field, wire = -1;                  // wire −1: reading a tag
        ulong varint;
        int shift;
        long left;                             // bytes of a fixed or length-delimited value still to pass (hashed)
        bool inValue;                          // reading the varint value (wire 0) or the length (wire 2)
        string? recorded;
        Status? failed;

        public void Append(ReadOnlySpan<byte> data)
        {
            while (data.Length > 0 && failed is null)
            {
                if (held is not null)
                {
                    int n = Math.Min(data.Length, held.Length - heldAt);
                    data[..n].CopyTo(held.AsSpan(heldAt));
                    heldAt += n;
                    data = data[n..];
                    if (heldAt == held.Length) EndHeldEntry();
                    continue;
                }
                if (left > 0)
                {
                    int n = (int)Math.Min(data.Length, left);
                    sha.AppendData(data[..n]);
                    left -= n;
                    data = data[n..];
                    continue;
                }
                byte b = data[0];
                data = data[1..];
                head.Add(b);
                if (shift >= 64) { failed = Status.Malformed; break; }
                varint |= (ulong)(b & 0x7f) << shift;
                shift += 7;
                if ((b & 0x80) != 0) continue;
                ulong value = varint;
                varint = 0;
                shift = 0;
                if (!inValue) Tag(value);
                else Value(value);
            }
        }

        void Tag(ulong tag)
        {
            field = (int)Math.Min(tag >> 3, int.MaxValue);
            wire = (int)(tag & 7);
            if (field == 0) { failed = Status.Malformed; return; }
            switch (wire)
            {
                case 0: case 2: inValue = true; break;
                case 1: PassHead(8); break;
                case 5: PassHead(4); break;
                default: failed = Status.Malformed; break;
            }
        }

        void Value(ulong value)
        {
            inValue = false;
            if (wire == 0) { PassHead(0); return; }
            if (value > int.MaxValue) { failed = Status.Malformed; return; }
            if (field == ModelProto.MetadataPropsFieldNumber && value <= MaxHeldEntry)
            {
                held = new byte[value];
                heldAt = 0;
                if (value == 0) EndHeldEntry();
                return;
            }
            PassHead((long)value);
        }

        /// <summary>Hashes the field's tag and length, then lets <paramref name="valueBytes"/> pass through the hash.</summary>
        void PassHead(long valueBytes)
        {
            sha.AppendData(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(head));
            head.Clear();
            left = valueBytes;
            wire = -1;
        }

        void EndHeldEntry()
        {
            var payload = held!;
            held = null;
            wire = -1;
            if (TryParseEntry(payload, out var key, out var value) && key == Key)
            {
                if (recorded is not null) { failed = Status.Malformed; return; }   // two digests
                recorded = value;
                head.Clear();                                                      // the digest field is not hashed
                return;
            }
            sha.AppendData(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(head));
            sha.AppendData(payload);
            head.Clear();
        }

        /// <summary>The verdict once every byte has been appended.</summary>
        public Status Finish()
        {
            if (failed is { } f) return f;
            if (held is not null || left > 0 || head.Count > 0 || inValue) return Status.Malformed;  // ends inside a field
            if (recorded is null) return Status.Missing;
            return string.Equals(Convert.ToHexStringLower(sha.GetHashAndReset()), recorded, StringComparison.Ordinal) ? Status.Valid : Status.Mismatch;
        }

        public void Dispose() => sha.Dispose();
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

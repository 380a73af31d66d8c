//! The declaration macros: `record!` (a fixed record), `message!` (fixed fields, then
//! tails) and the `check_roundtrip!` helper they expand to. Each declaration yields the
//! struct, its codec and its descriptor for the generators. The macros are exported at
//! the crate root and name everything through `$crate::wire::…`.

/// Encodes `$v`, decodes the bytes, and checks the value and a re-encoding match.
#[macro_export]
#[doc(hidden)]
macro_rules! check_roundtrip {
    ($name:ident, $v:ident) => {{
        let bytes = $crate::wire::Wire::to_vec(&$v);
        if bytes.len() != $crate::wire::Wire::encoded_len(&$v) {
            return Err(format!("encoded_len {} != actual {}", $crate::wire::Wire::encoded_len(&$v), bytes.len()));
        }
        let d = <$name as $crate::wire::Wire>::decode(&bytes).map_err(|e| format!("decode failed: {e}"))?;
        if d != $v {
            return Err(format!("decoded {d:?} != original {:?}", $v));
        }
        if $crate::wire::Wire::to_vec(&d) != bytes {
            return Err("re-encoding differs".into());
        }
        Ok(())
    }};
}

/// The descriptors of fixed fields `$field: $fty`, each with its doc lines.
#[macro_export]
#[doc(hidden)]
macro_rules! field_descs {
    ($( $field:ident: $fty:ty, [$($fdoc:expr),*] );*) => {
        &[ $( $crate::wire::FieldDesc {
            name: stringify!($field),
            ty: <$fty as $crate::wire::Fixed>::TYPE,
            doc: concat!($($fdoc, " ",)* ""),
        }, )* ]
    };
}

/// Writes fixed fields `$field: $fty` of `$v`, one after the other, into `$out` from
/// offset `$off` on, leaving `$off` past them.
#[macro_export]
#[doc(hidden)]
macro_rules! put_fixed {
    ($v:expr, $out:ident, $off:ident; $($field:ident: $fty:ty),*) => {
        $(
            <$fty as $crate::wire::Fixed>::put(&$v.$field, &mut $out[$off..]);
            $off += <$fty as $crate::wire::Fixed>::SIZE;
        )*
    };
}

/// Reads fixed fields `$field: $fty` from `$buf` at offset `$off` on into variables of
/// the same names, leaving `$off` past them.
#[macro_export]
#[doc(hidden)]
macro_rules! get_fixed {
    ($buf:ident, $off:ident; $($field:ident: $fty:ty),*) => {
        $(
            let $field = <$fty as $crate::wire::Fixed>::get(&$buf[$off..]);
            $off += <$fty as $crate::wire::Fixed>::SIZE;
        )*
    };
}

/// A message's `encode` up to its tails: makes room for the fixed part at the end of
/// `$out`, binds it to `$fixed` and writes the fixed fields, leaving `$off` past them.
#[macro_export]
#[doc(hidden)]
macro_rules! encode_fixed {
    ($v:expr, $out:ident, $fixed:ident, $off:ident; $($field:ident: $fty:ty),*) => {
        let start = $out.len();
        $out.resize(start + Self::FIXED_SIZE, 0);
        let $fixed = &mut $out[start..];
        let mut $off = 0usize;
        $crate::put_fixed!($v, $fixed, $off; $($field: $fty),*);
    };
}

/// A message's `decode_prefix` up to its tails: returns `Truncated` when `$buf` is shorter
/// than the fixed part, else reads the fixed fields, leaving `$off` past them.
#[macro_export]
#[doc(hidden)]
macro_rules! decode_fixed {
    ($name:ident, $buf:ident, $off:ident; $($field:ident: $fty:ty),*) => {
        if $buf.len() < Self::FIXED_SIZE {
            return Err($crate::ProtoError::Truncated {
                what: stringify!($name),
                need: Self::FIXED_SIZE,
                have: $buf.len(),
            });
        }
        let mut $off = 0usize;
        $crate::get_fixed!($buf, $off; $($field: $fty),*);
    };
}

/// A plain copyable struct of fixed fields: a record, or a message without tails.
#[macro_export]
#[doc(hidden)]
macro_rules! plain_struct {
    ($(#[doc = $doc:expr])* $name:ident { $( $(#[doc = $fdoc:expr])* $field:ident : $fty:ty, )* }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name {
            $( $(#[doc = $fdoc])* pub $field: $fty, )*
        }
    };
}

/// Declares a fixed record: a plain struct of fixed fields.
#[macro_export]
macro_rules! record {
    (
        $(#[doc = $doc:expr])*
        pub struct $name:ident {
            $( $(#[doc = $fdoc:expr])* pub $field:ident : $fty:ty ),* $(,)?
        }
    ) => {
        $crate::plain_struct!($(#[doc = $doc])* $name { $( $(#[doc = $fdoc])* $field: $fty, )* });

        impl $name {
            pub const DESC: $crate::wire::RecordDesc = $crate::wire::RecordDesc {
                name: stringify!($name),
                doc: concat!($($doc, "\n",)* ""),
                size: <$name as $crate::wire::Fixed>::SIZE,
                fields: $crate::field_descs!($( $field: $fty, [$($fdoc),*] );*),
            };
        }

        impl $crate::wire::Fixed for $name {
            const SIZE: usize = 0 $(+ <$fty as $crate::wire::Fixed>::SIZE)*;
            const TYPE: $crate::wire::FieldType = $crate::wire::FieldType::Record(&$name::DESC);
            #[inline]
            #[allow(unused_assignments)]
            fn put(&self, out: &mut [u8]) {
                let mut off = 0usize;
                $crate::put_fixed!(self, out, off; $($field: $fty),*);
            }
            #[inline]
            #[allow(unused_assignments)]
            fn get(src: &[u8]) -> Self {
                let mut off = 0usize;
                $crate::get_fixed!(src, off; $($field: $fty),*);
                Self { $($field,)* }
            }
            #[allow(unused_assignments, unused_variables, unused_mut)]
            fn sample(seed: u64) -> Self {
                let mut s = seed.wrapping_mul(7);
                $(
                    s += 1;
                    let $field = <$fty as $crate::wire::Fixed>::sample(s);
                )*
                Self { $($field,)* }
            }
        }
    };
}

/// Declares a message: fixed fields, then tails (see the module comment).
#[macro_export]
macro_rules! message {
    // With tails: the struct borrows from the payload.
    (
        $(#[doc = $doc:expr])*
        pub struct $name:ident<'a> {
            $( $(#[doc = $fdoc:expr])* pub $field:ident : $fty:ty, )*
            tail {
                $( $(#[doc = $tdoc:expr])* pub $tfield:ident : $tty:ident, )+
            }
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name<'a> {
            $( $(#[doc = $fdoc])* pub $field: $fty, )*
            $( $(#[doc = $tdoc])* pub $tfield: $crate::wire::$tty<'a>, )+
        }

        impl<'a> $name<'a> {
            /// Size of the fixed part, tail length fields included.
            pub const FIXED_SIZE: usize = 0
                $(+ <$fty as $crate::wire::Fixed>::SIZE)*
                $(+ <$crate::wire::$tty<'a> as $crate::wire::Tail<'a>>::KIND.len_size())+;
        }

        impl<'a> $crate::wire::Wire<'a> for $name<'a> {
            const DESC: &'static $crate::wire::MessageDesc = &$crate::wire::MessageDesc {
                name: stringify!($name),
                doc: concat!($($doc, "\n",)* ""),
                fields: $crate::field_descs!($( $field: $fty, [$($fdoc),*] );*),
                tails: &[ $( $crate::wire::TailDesc {
                    name: stringify!($tfield),
                    kind: <$crate::wire::$tty<'static> as $crate::wire::Tail<'static>>::KIND,
                    doc: concat!($($tdoc, " ",)* ""),
                }, )+ ],
                fixed_size: $name::FIXED_SIZE,
                sample: |out| {
                    let mut s = 0u64;
                    $( s += 1; let $field = <$fty as $crate::wire::Fixed>::sample(s); )*
                    $( s += 1; let $tfield = <$crate::wire::$tty<'static> as $crate::wire::Tail<'static>>::sample(s); )+
                    let _ = s;
                    $crate::wire::Wire::encode(&$name { $($field,)* $($tfield,)+ }, out);
                },
                roundtrip: |bytes| {
                    let mut u = $crate::wire::Unstructured::new(bytes);
                    $( let $field = <$fty as $crate::wire::Fixed>::arbitrary(&mut u); )*
                    let ntails = [$(stringify!($tfield)),+].len();
                    let mut i = 0usize;
                    $( i += 1; let $tfield = <$crate::wire::$tty<'_> as $crate::wire::Tail<'_>>::arbitrary(&mut u, i == ntails); )+
                    let v = $name { $($field,)* $($tfield,)+ };
                    $crate::check_roundtrip!($name, v)
                },
                validate: |b| <$name<'_> as $crate::wire::Wire<'_>>::decode(b).map(|_| ()),
            };

            #[inline]
            #[allow(unused_assignments)]
            fn encode(&self, out: &mut Vec<u8>) {
                $crate::encode_fixed!(self, out, fixed, off; $($field: $fty),*);
                $(
                    {
                        let k = <$crate::wire::$tty<'a> as $crate::wire::Tail<'a>>::KIND;
                        $crate::wire::put_len(&mut fixed[off..], k.len_size(),
                            $crate::wire::Tail::count(&self.$tfield));
                        off += k.len_size();
                    }
                )+
                $( $crate::wire::Tail::write(&self.$tfield, out); )+
            }

            #[inline]
            fn encoded_len(&self) -> usize {
                Self::FIXED_SIZE
                    $(+ $crate::wire::Tail::count(&self.$tfield)
                        * <$crate::wire::$tty<'a> as $crate::wire::Tail<'a>>::KIND.unit())+
            }

            #[inline]
            #[allow(unused_assignments)]
            fn decode_prefix(buf: &'a [u8]) -> Result<(Self, usize), $crate::ProtoError> {
                $crate::decode_fixed!($name, buf, off; $($field: $fty),*);
                let mut pos = Self::FIXED_SIZE;
                $(
                    let $tfield = {
                        let k = <$crate::wire::$tty<'a> as $crate::wire::Tail<'a>>::KIND;
                        let nbytes = if k.len_size() == 0 {
                            buf.len() - pos
                        } else {
                            let count = $crate::wire::get_len(&buf[off..], k.len_size());
                            off += k.len_size();
                            if count > k.max() {
                                return Err($crate::ProtoError::TooLong {
                                    what: concat!(stringify!($name), ".", stringify!($tfield)),
                                    len: count, max: k.max(),
                                });
                            }
                            count * k.unit()
                        };
                        if buf.len() - pos < nbytes {
                            return Err($crate::ProtoError::Truncated {
                                what: concat!(stringify!($name), ".", stringify!($tfield)),
                                need: pos + nbytes, have: buf.len(),
                            });
                        }
                        let v = <$crate::wire::$tty<'a> as $crate::wire::Tail<'a>>::read(&buf[pos..pos + nbytes])?;
                        pos += nbytes;
                        v
                    };
                )+
                Ok((Self { $($field,)* $($tfield,)+ }, pos))
            }
        }
    };
    // Without tails: a plain copyable struct.
    (
        $(#[doc = $doc:expr])*
        pub struct $name:ident {
            $( $(#[doc = $fdoc:expr])* pub $field:ident : $fty:ty, )*
        }
    ) => {
        $crate::plain_struct!($(#[doc = $doc])* $name { $( $(#[doc = $fdoc])* $field: $fty, )* });

        impl $name {
            /// Size of the whole message.
            pub const FIXED_SIZE: usize = 0 $(+ <$fty as $crate::wire::Fixed>::SIZE)*;
        }

        impl<'a> $crate::wire::Wire<'a> for $name {
            const DESC: &'static $crate::wire::MessageDesc = &$crate::wire::MessageDesc {
                name: stringify!($name),
                doc: concat!($($doc, "\n",)* ""),
                fields: $crate::field_descs!($( $field: $fty, [$($fdoc),*] );*),
                tails: &[],
                fixed_size: $name::FIXED_SIZE,
                #[allow(unused_mut)]
                sample: |out| {
                    let mut s = 0u64;
                    $( s += 1; let $field = <$fty as $crate::wire::Fixed>::sample(s); )*
                    let _ = s;
                    $crate::wire::Wire::encode(&$name { $($field,)* }, out);
                },
                #[allow(unused_variables, unused_mut)]
                roundtrip: |bytes| {
                    let mut u = $crate::wire::Unstructured::new(bytes);
                    $( let $field = <$fty as $crate::wire::Fixed>::arbitrary(&mut u); )*
                    let v = $name { $($field,)* };
                    $crate::check_roundtrip!($name, v)
                },
                validate: |b| <$name as $crate::wire::Wire<'_>>::decode(b).map(|_| ()),
            };

            #[inline]
            #[allow(unused_assignments, unused_variables, unused_mut)]
            fn encode(&self, out: &mut Vec<u8>) {
                $crate::encode_fixed!(self, out, fixed, off; $($field: $fty),*);
            }

            #[inline]
            fn encoded_len(&self) -> usize {
                Self::FIXED_SIZE
            }

            #[inline]
            #[allow(unused_assignments, unused_variables, unused_mut)]
            fn decode_prefix(buf: &'a [u8]) -> Result<(Self, usize), $crate::ProtoError> {
                $crate::decode_fixed!($name, buf, off; $($field: $fty),*);
                Ok((Self { $($field,)* }, Self::FIXED_SIZE))
            }
        }
    };
}
